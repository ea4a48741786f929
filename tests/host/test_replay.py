"""What the waiting hosts replay (o4o_operator.testing.replay): pure, no processes."""

from __future__ import annotations

from pathlib import Path

from o4o_operator.providers.ssh_session import _wrap, owner_upload_command
from o4o_operator.testing.replay import (
    KILL,
    PROBE,
    UPLOAD,
    HttpRecording,
    Occurrences,
    OutputLine,
    ScriptRecording,
    Transcript,
    command_identity,
    http_identity,
    renamed,
)

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "scripts"


def test_every_host_script_is_named_by_words_that_precede_its_rendered_values_and_no_two_share_a_name() -> None:
    names = {}
    for template in sorted(TEMPLATES.glob("[a-z]*.sh")):
        header = template.read_text().splitlines()[1]
        words = header.split()[1:4]
        assert not any("{" in word for word in words), f"{template.name}: {header}"
        names[" ".join(words)] = template.name
    assert len(names) == len(list(TEMPLATES.glob("[a-z]*.sh")))


def test_a_wrapped_script_is_named_by_its_header_whatever_its_values_and_environment() -> None:
    script = "#!/usr/bin/env bash\n# Stage \"database\" for bench.alpha. Local: ...\nset -e\n"
    first = _wrap(script, {"O4O_DB_PASSWORD": "s3cret", "O4O_X": "#!not a script\n# header"})
    second = _wrap(script.replace("alpha", "beta"), {"O4O_DB_PASSWORD": "other"})
    command = "exec timeout --kill-after=10 630 bash -s"
    assert command_identity(command, first) == command_identity(command, second) == 'script Stage "database" for'
    assert "s3cret" not in command_identity(command, first)


def test_helper_commands_have_names_of_their_own() -> None:
    assert command_identity('printf "%s\\n%s" "${O4O_ROOT:-}" "${O4O_SANDBOX_API:-}"', "") == PROBE
    assert command_identity(owner_upload_command("/srv/o4o/x/.env", 0o600, "o4o-x", "ab12"), "KEY=v") == UPLOAD
    assert command_identity("bash -s", "kill -TERM -- -123 2>/dev/null || exit 0\n") == KILL
    assert command_identity("bash -s", "set -euo pipefail\nmv a b\n") == "command set -euo pipefail"


def test_a_replay_waits_the_latency_for_every_shimmed_command_made_before_each_line() -> None:
    recording = ScriptRecording((OutputLine(0.0, 0, "::o4o::pid 7"), OutputLine(0.5, 2, "half"),
                                 OutputLine(0.9, 3, "done", stderr=True)), seconds=1.0, shim_calls=4, exit_status=0)
    timed, end = recording.schedule(5.0)
    assert [at for at, _ in timed] == [0.0, 10.5, 15.9]
    assert end == 21.0
    assert recording.schedule(0.0)[1] == 1.0


def test_a_host_replays_each_script_in_its_own_order_and_the_last_one_past_the_recorded_ones() -> None:
    transcript = Transcript()
    first, second = (ScriptRecording((), 1.0, 0, status) for status in (0, 1))
    transcript.add_script("script A", first)
    transcript.add_script("script A", second)
    transcript.add_answer(http_identity("get", "/api/v1/admin/apps?x=1"), HttpRecording(200, b"[]"))
    one, other = Occurrences(), Occurrences()
    assert [transcript.script("script A", one.next("script A")) for _ in range(3)] == [first, second, second]
    assert transcript.script("script A", other.next("script A")) == first
    assert transcript.script("script B", 0) is None
    assert transcript.answer("GET /api/v1/admin/apps", 5) == HttpRecording(200, b"[]")
    assert transcript.counts() == {"script A": 2, "GET /api/v1/admin/apps": 1}


def test_a_replay_speaks_of_its_own_instance() -> None:
    line = "cloned into /srv/o4o/bench.alpha/repo for alpha.example.com"
    assert renamed(line, [("alpha", "beta")]) == "cloned into /srv/o4o/bench.beta/repo for beta.example.com"
    assert renamed("abc", []) == "abc"
