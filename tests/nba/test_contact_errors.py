"""Bad rules files fail at load with an error naming the file and the rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from nba.contact import ContactPolicy, RulesError

GOOD = """
name = "ok"
[[frequency_caps]]
channel = "email"
max = 2
days = 7
"""


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("name = 'x'\n[frequncy_caps]\n", r"rule 'frequncy_caps': unknown rule"),
        ("[min_gap]\nhourz = 3\n", r"rule 'min_gap': unknown key 'hourz'"),
        ("[min_gap]\nhours = 3\ndays = 1\n", r"rule 'min_gap': give either"),
        ("[min_gap]\nhours = -1\n", r"rule 'min_gap': 'hours' must not be negative"),
        ("[min_gap]\nhours = 'a'\n", r"rule 'min_gap': 'hours' must be a number"),
        (
            "[[frequency_caps]]\nchannel = 'fax'\nmax = 1\ndays = 7\n",
            r"rule 'frequency_caps\[1\] \(fax\)': unknown channel 'fax'",
        ),
        (
            "[[frequency_caps]]\nchannel = 'email'\nmax = -2\ndays = 7\n",
            r"rule 'frequency_caps\[1\] \(email\)': 'max' must not be negative",
        ),
        (
            "[[frequency_caps]]\nchannel = 'email'\nmax = 1.5\ndays = 7\n",
            r"rule 'frequency_caps\[1\] \(email\)': 'max' must be an integer",
        ),
        (
            "[[frequency_caps]]\nchannel = 'email'\nmax = 1\ndays = 0\n",
            r"rule 'frequency_caps\[1\] \(email\)': 'days' must be positive",
        ),
        (
            "[[frequency_caps]]\nchannel = 'email'\nmax = 1\n",
            r"rule 'frequency_caps\[1\] \(email\)': missing key 'days'",
        ),
        (
            "[[frequency_caps]]\nchannel = 'email'\nmax = 1\ndays = 7\nwindow = 3\n",
            r"rule 'frequency_caps\[1\] \(email\)': unknown key 'window'",
        ),
        (
            "[[frequency_caps]]\nchannel='email'\nmax=1\ndays=7\n"
            "[[frequency_caps]]\nchannel='email'\nmax=3\ndays=7\n",
            r"rule 'frequency_caps\[2\] \(email\)': a cap over 7 days on 'email' is set twice",
        ),
        ("frequency_caps = 3\n", r"rule 'frequency_caps': must be a list"),
        ("[consent]\nexempt = ['pigeon']\n", r"rule 'consent': unknown channel 'pigeon'"),
        ("[no_see]\nchannels = 'rep_visit'\n", r"rule 'no_see': 'channels' must be a list"),
        ("[repeat]\ndays = -3\n", r"rule 'repeat': 'days' must not be negative"),
        ("[feedback]\nsnooze_default_days = 0\n", r"rule 'feedback': 'snooze_default_days'"),
        ("[holdout]\nshare = 1.0\n", r"rule 'holdout': 'share' must be in \[0, 1\)"),
        ("[holdout]\nshare = true\n", r"rule 'holdout': 'share' must be a number"),
        ("[holdout]\nsalt = ''\n", r"rule 'holdout': 'salt' must be a non-empty string"),
        ("name = ''\n", r"rule 'name': must be a non-empty string"),
        ("consent = 1\n", r"rule 'consent': must be a table"),
        ("name = 'x\n", r"not valid TOML"),
    ],
)
def test_bad_rules_files_name_file_and_rule(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(RulesError, match=match) as info:
        ContactPolicy.load(path)
    assert str(path) in str(info.value)


def test_extra_channels_extend_the_vocabulary(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        "extra_channels = ['sms']\n[[frequency_caps]]\nchannel = 'sms'\nmax = 1\ndays = 7\n"
    )
    pol = ContactPolicy.load(path)
    assert "sms" in pol.channels and pol.frequency_caps[0].rule == "frequency_cap:sms:1/7d"


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read rules file"):
        ContactPolicy.load(tmp_path / "absent.toml")
    y = tmp_path / "rules.yaml"
    y.write_text("consent: [unclosed\n")
    with pytest.raises(RulesError, match=f"{y}: not valid YAML"):
        ContactPolicy.load(y)
    y.write_text("- just\n- a list\n")
    with pytest.raises(RulesError, match="must hold a table of rules"):
        ContactPolicy.load(y)
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    assert ContactPolicy.load(good).rule_names[-1] == "frequency_cap:email:2/7d"
