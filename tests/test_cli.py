"""The `ccn-bot` command as an operator runs it, on a real SQLite file: the commands in this
process (click's runner), the terminal chat, which reads the process's stdin, as a real process."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests import inprocess

REPO = Path(__file__).parent.parent


def environment(tmp_path: Path, **env: str) -> dict[str, str | None]:
    """What the command sees over this process's environment (None: unset)."""
    data = str(tmp_path / "data")
    return {"DATABASE_URL": None, "TELEGRAM_BOT_TOKEN": None, "DATA_DIR": data, **env}


def ccn(tmp_path: Path, *args: str, stdin: str = "", **env: str) -> inprocess.Done:
    """The command's work, in this process (its process is not what these tests are about)."""
    return inprocess.ccn(tmp_path, environment(tmp_path, **env), *args, stdin=stdin)


def ccn_process(
    tmp_path: Path, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    """`python -m bot ARGS` as a real process: for what depends on the process (its stdin)."""
    environ = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TELEGRAM_BOT_TOKEN")
    }
    environ.update({"DATA_DIR": str(tmp_path / "data"), **env})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environ,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def test_clusters_list_shows_the_registry(tmp_path: Path) -> None:
    done = ccn(tmp_path, "clusters", "list")
    assert done.returncode == 0, done.stderr
    assert "Cụm công nghiệp làng nghề Đại Thắng" in done.stdout
    assert "68,45 %" in done.stdout  # Bình Phú, written the Vietnamese way
    assert "77 cụm công nghiệp." in done.stdout


def test_list_by_district_as_json(tmp_path: Path) -> None:
    done = ccn(tmp_path, "clusters", "list", "--district", "phu xuyen", "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert rows and {r["district"] for r in rows} == {"Huyện Phú Xuyên"}
    assert "dai-thang" in {r["code"] for r in rows}


def test_bad_import_names_lines_in_vietnamese_and_changes_nothing(tmp_path: Path) -> None:
    export = tmp_path / "out.csv"
    assert ccn(tmp_path, "clusters", "export", str(export)).returncode == 0
    with export.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows[0]["occupancy_rate"] = "120"
    rows[1]["planned_groundbreaking"] = "tháng mười"
    with export.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    done = ccn(tmp_path, "clusters", "import", str(export))
    assert done.returncode == 1
    assert "Dòng 2, cột occupancy_rate: không phải tỷ lệ từ 0 đến 100" in done.stderr
    assert "Dòng 3, cột planned_groundbreaking: không phải tháng" in done.stderr
    assert "Chưa nhập gì: có 2 lỗi." in done.stderr
    listed = ccn(tmp_path, "clusters", "list", "--format", "json")
    assert "120" not in {str(r["occupancy_rate"]) for r in json.loads(listed.stdout)}


def test_import_of_the_export_is_idempotent(tmp_path: Path) -> None:
    export = tmp_path / "out.xlsx"
    assert ccn(tmp_path, "clusters", "export", str(export)).returncode == 0
    done = ccn(tmp_path, "clusters", "import", str(export))
    assert done.returncode == 0, done.stderr
    assert "0 cụm mới, 0 cụm cập nhật, 77 cụm không đổi" in done.stdout


def test_wrong_setting_stops_with_one_line(tmp_path: Path) -> None:
    done = ccn(tmp_path, "clusters", "list", TIMEZONE="Mars/Olympus")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "TIMEZONE" in done.stderr


@pytest.mark.parametrize("command", [["demo"], ["run"]])
def test_terminal_demo_driven_through_a_pipe(tmp_path: Path, command: list[str]) -> None:
    photo = tmp_path / "site.jpg"
    Image.new("RGB", (80, 60), "gray").save(photo, "JPEG")
    script = [
        "dai thang",  # the investor's own cluster
        str(photo),  # a file path is a photo
        "/baocao",
        "co",  # Có, typed as on Zalo
        "/huy",
        "/as admin",
        "binh phu",
        "1",  # the first choice: Bình phú I
        "dong phu yen",
        "nha may bia",
        "/tonghop 6/2021",
        "~50",  # once ended the chat (a home directory that does not exist)
        "/trogiup",
    ]
    done = ccn_process(tmp_path, *command, stdin="\n".join(script) + "\n")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "[demo: investor]" in out and "/baocao — gửi báo cáo tháng" in out
    assert "Chủ đầu tư: Công ty cổ phần Hanel Mirolin" in out
    assert "Theo kế hoạch: khởi công tháng 03/2021; hoàn thành HTKT Quý IV/2021." in out
    assert "Đã lưu 1 ảnh" in out
    assert "Đã thêm 1 ảnh" in out and "QHCT 1/500 đã được phê duyệt chưa?" in out
    assert "Phương án bồi thường" in out and "Đã tạm dừng" in out
    assert "[demo: admin]" in out and "/moi — mời người dùng" in out
    assert "Theo kế hoạch: lấp đầy 68,45 %." in out  # Bình phú itself
    assert "[1] Cụm CN Bình phú I" in out  # and the clusters named like it
    assert "Theo kế hoạch: lấp đầy 88,44 %." in out  # button 1 tapped: Bình phú I
    # two clusters share this name: their kind tells them apart
    assert "Đông Phú Yên (đang hoạt động, chưa hoàn thiện hạ tầng)" in out
    assert "Đông Phú Yên (thành lập giai đoạn 2018–2020)" in out
    assert "Không tìm thấy cụm công nghiệp nào khớp với “nha may bia”" in out
    assert "Tổng hợp tháng 06/2021" in out and "[tệp]" in out and "tong-hop-2021-06.xlsx" in out
    assert out.count("/ngonngu — Tiếng Việt / English") == 3  # the help after `~50` too
    assert (tmp_path / "data" / "demo.db").exists()
    assert not (tmp_path / "data" / "ccn.db").exists()  # the demo keeps off the real database


def test_people_phone_is_kept_as_zns_takes_it(tmp_path: Path) -> None:
    assert ccn(tmp_path, "demo", stdin="/trogiup\n").returncode == 0  # the demo people exist
    demo = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'demo.db'}"
    done = ccn(tmp_path, "people", "phone", "1", "0912 345 678", DATABASE_URL=demo)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "84912345678"
    refused = ccn(tmp_path, "people", "phone", "1", "12345", DATABASE_URL=demo)
    assert refused.returncode == 2 and "12345" in refused.stderr
    nobody = ccn(tmp_path, "people", "phone", "999", "0912345678", DATABASE_URL=demo)
    assert nobody.returncode == 1 and "#999" in nobody.stderr


def test_export_writes_the_report_to_sign_beside_the_workbook(tmp_path: Path) -> None:
    from docx import Document
    from openpyxl import load_workbook

    out = tmp_path / "thang-6" / "tong-hop.xlsx"
    out.parent.mkdir()
    done = ccn(tmp_path, "export", "--period", "6/2021", "--out", str(out))
    assert done.returncode == 0, done.stderr
    report = out.with_suffix(".docx")
    assert str(report) in done.stdout and str(out) in done.stdout
    text = "\n".join(p.text for p in Document(str(report)).paragraphs)
    assert "Kế hoạch số 68/KH-UBND" in text and "BÁO CÁO" in text
    assert "Tổng hợp" in load_workbook(out).sheetnames
