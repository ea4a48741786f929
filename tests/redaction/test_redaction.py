"""Redaction: secret values and credential shapes never survive into stored text."""

from __future__ import annotations

import base64
import urllib.parse

from o4o_operator.redaction import MASK, Redactor, bound_line


def test_registered_values_are_masked_in_plain_url_and_base64_forms() -> None:
    secret = "s3cr3t-canary-value/+="
    redact = Redactor([secret])
    for text in (f"token={secret}", f"u={urllib.parse.quote(secret, safe='')}",
                 f"b64 {base64.b64encode(secret.encode()).decode()}"):
        assert secret not in redact(text)
        assert MASK in redact(text)


def test_multiline_values_are_masked_line_by_line() -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAabcdefgh\nBBBBijklmnop\n-----END OPENSSH PRIVATE KEY-----"
    redact = Redactor([key])
    assert "AAAAabcdefgh" not in redact("oops: AAAAabcdefgh")


def test_credential_shapes_are_masked_without_registration() -> None:
    redact = Redactor()
    assert "hunter2" not in redact("cloning https://bob:hunter2@git.example.com/r.git")
    assert "AKIAABCDEFGHIJKLMNOP" not in redact("key AKIAABCDEFGHIJKLMNOP used")
    assert "MIIEv" not in redact("-----BEGIN PRIVATE KEY-----\nMIIEv\n-----END PRIVATE KEY-----")


def test_short_values_are_not_registered_to_avoid_masking_everything() -> None:
    assert Redactor(["ab"])("about abc") == "about abc"


def test_bound_line_cuts_on_utf8_boundaries() -> None:
    line = "é" * 1000
    cut = bound_line(line, 1024)
    assert len(cut.encode()) <= 1024
    assert cut.endswith("...")
    assert bound_line("short", 1024) == "short"


def test_an_idle_workers_redactor_holds_its_values_and_little_else() -> None:
    """1000 idle instances keep 1000 redactors (bench P4): the values as one tuple, not a set's table."""
    import gc
    import tracemalloc

    secrets = ["db-password-0123456789abcdef", "admin-password-0123456789abcdef",
               "\n".join(f"line{i:02d}-" + "k" * 60 for i in range(5))]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [Redactor(secrets) for _ in range(100)]
        per_redactor = (tracemalloc.get_traced_memory()[0] - before) / len(kept)
    finally:
        tracemalloc.stop()
    assert per_redactor < 2900  # 17 values and their strings: 2650 bytes; with a set, 3275
    assert kept[0]("line03-" + "k" * 60 + " and db-password-0123456789abcdef") == f"{MASK} and {MASK}"


def test_values_added_later_are_replaced_longest_first() -> None:
    redact = Redactor(["short-secret"])
    redact.add(["short-secret-and-more"])
    assert redact("x short-secret-and-more y short-secret z") == f"x {MASK} y {MASK} z"
