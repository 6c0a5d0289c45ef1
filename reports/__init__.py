"""The numbers Sở Công Thương sends upward (issue: status, summary, workbook)."""
