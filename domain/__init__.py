"""What the bot means, with no framework in it: the reporting calendar, who reports on what,
the forms and their answers, the draft, slots and the reporting rate. Imports only the standard
library (and Babel where words are formatted); everything else imports it."""
