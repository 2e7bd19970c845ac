"""Env files with what systemd's EnvironmentFile= makes of them: one table, two checks.

tests/unit/test_envfile.py pins harbor-ha's parser to these expectations, and
tests/integration/systemd/test_envfile_systemd.py runs every file through a real systemd (as
PID 1 in a namespace) and checks that systemd gives the service exactly these values.  So the
expectations are systemd's behaviour, not a guess at it.  The cases follow the rules of
systemd.exec(5), EnvironmentFile=, and the corners of its parser (src/basic/env-file.c).
"""

from __future__ import annotations

from typing import NamedTuple


class Case(NamedTuple):
    """One env file, the environment systemd gives the service, and the lines harbor-ha
    reports as problems (systemd ignores or misreads them)."""

    name: str
    text: str | bytes
    values: dict[str, str] | None
    """None: systemd refuses the whole file (the service does not start)."""
    problem_lines: tuple[int, ...] = ()
    before_v254_only: bool = False
    """True: systemd changed this case in v254; the values are those of older versions."""

    @property
    def data(self) -> bytes:
        """The file's bytes."""
        return self.text if isinstance(self.text, bytes) else self.text.encode()


CASES: list[Case] = [
    Case("inline_comment", "HARBOR_HA_VIP=10.0.0.100/24   # the VIP\n",
         {"HARBOR_HA_VIP": "10.0.0.100/24   # the VIP"}),
    Case("comments_and_blank_lines", "# c\n; c\n   # indented\n\t; tab\n\n \t \nA=1\n",
         {"A": "1"}),
    Case("whitespace_around_key_and_value", "  A  =   b  c   \n\tB\t=\tx\t\n",
         {"A": "b  c", "B": "x"}),
    Case("single_quotes_verbatim", "A='  x # y \\n $z \" '  \n",
         {"A": '  x # y \\n $z " '}),
    Case("double_quote_escapes", 'A="q\\"b\\\\s\\`t\\$d\\n\\x \'s\'"\n',
         {"A": "q\"b\\s`t$d\\n\\x 's'"}),
    Case("quotes_inside_a_value_are_plain", "A=x \"y\" 'z'\n", {"A": "x \"y\" 'z'"}),
    Case("adjacent_quoted_parts_join", "A=\"a\" 'b' c\nB=\"x\"y\n", {"A": "abc", "B": "xy"}),
    Case("quoted_values_span_lines", "A=\"line1\nline2\"\nB='x\n y'\nC=1\n",
         {"A": "line1\nline2", "B": "x\n y", "C": "1"}),
    Case("continuation_unquoted", "A=one\\\ntwo \\\n  three\nB=x\n",
         {"A": "onetwo   three", "B": "x"}),
    Case("continuation_in_double_quotes", 'A="one\\\ntwo"\n', {"A": "onetwo"}),
    Case("backslash_unquoted", "A=a\\ b\\\\c\\#d\\'e\nB=x\\ \n", {"A": "a b\\c#d'e", "B": "x "}),
    Case("empty_values", "A=\nB=\"\"\nC=''\nD=   \n", {"A": "", "B": "", "C": "", "D": ""}),
    Case("last_assignment_wins", "A=1\nB=2\nA=3\n", {"A": "3", "B": "2"}),
    Case("no_final_newline", "A=1\nB=two words", {"A": "1", "B": "two words"}),
    Case("crlf_line_ends", "A=1\r\nB=\"2\"\r\n", {"A": "1", "B": "2"}),
    Case("no_variable_expansion", "A=$HOME ${PATH} `id`\n", {"A": "$HOME ${PATH} `id`"}),
    Case("equals_and_semicolon_in_value", "A=b=c;d #e\n", {"A": "b=c;d #e"}),
    Case("lowercase_name", "harbor_ha_vip=x\n", {"harbor_ha_vip": "x"}),
    Case("utf8_value", "A=é ü → ✓\n", {"A": "é ü → ✓"}),
    Case("export_is_not_supported", "export A=1\nB=2\n", {"B": "2"}, (1,)),
    Case("line_without_equals", "JUSTAWORD\nB=2\nTRAILING", {"B": "2"}, (1, 3)),
    Case("invalid_names", "1A=x\nA-B=y\nA#B=z\nA B=w\nOK=1\n", {"OK": "1"}, (1, 2, 3, 4)),
    Case("unterminated_quote", "A=1\nB=\"open\nC=2\n", {"A": "1", "B": "open\nC=2\n"}, (2,)),
    Case("nul_byte_refused", "A=1\nB=x\0y\n", None),
    Case("invalid_utf8_refused", b"A=1\nB=\xff\xfe\n", None),
    Case("comment_ending_in_backslash", "# note \\\nA=1\nB=2\n", {"B": "2"}, (2,),
         before_v254_only=True),
]  # fmt: skip
