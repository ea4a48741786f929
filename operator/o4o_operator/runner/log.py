"""One instance's deployment log: redacted lines for the status tail and the full run.

Owns: redacting every line before it is kept, timestamps, the pending lines not
yet written to status, the size-capped full log (for the ConfigMap), and forgetting that full log
while the instance is idle (it is in the ConfigMap; whoever saves next reads it back first, see
``earlier_known``). Must not write anywhere; what scripts report (``::o4o::result``) comes back in
``CommandResult.results``.
"""

from __future__ import annotations

import datetime

from o4o_operator.redaction import Redactor


class InstanceLog:
    def __init__(self, redactor: Redactor, *, max_bytes: int = 256 * 1024, existing: str = "",
                 earlier_known: bool = True) -> None:
        self.redactor = redactor
        self._max_bytes = max_bytes
        self._full = existing
        self._pending: list[str] = []
        self.stage = ""
        self.earlier_known = earlier_known
        """False when the log saved before (in the ConfigMap) is not in :attr:`full_text`: read it back
        (:meth:`keep_earlier`) before saving, or the save would lose it."""
        self.unsaved = False
        """Lines were kept since the last :meth:`saved`."""

    def __call__(self, line: str) -> None:
        """A LogSink: redact, stamp and keep one line."""
        line = line.rstrip("\n")
        clean = self.redactor(line)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%H:%M:%S")
        entry = f"{stamp} [{self.stage}] {clean}" if self.stage else f"{stamp} {clean}"
        self._pending.append(entry)
        self._full += entry + "\n"
        self.unsaved = True
        self._cap()

    def keep_earlier(self, text: str) -> None:
        """Put ``text`` (a log kept from an earlier instance of this name, already redacted) before ours."""
        if text and not text.endswith("\n"):
            text += "\n"
        self._full = text + self._full
        self._cap()

    def _cap(self) -> None:
        if len(self._full) > self._max_bytes:
            cut = self._full.find("\n", len(self._full) - self._max_bytes)
            self._full = self._full[cut + 1:]

    def saved(self) -> None:
        """The full log was written where it is kept."""
        self.unsaved = False
        self.earlier_known = True

    def forget_saved(self) -> None:
        """Drop the full log if all of it was saved (an idle instance keeps no copy of its ConfigMap)."""
        if not self.unsaved and self.earlier_known and self._full:
            self._full = ""
            self.earlier_known = False

    def take_pending(self) -> list[str]:
        pending, self._pending = self._pending, []
        return pending

    @property
    def full_text(self) -> str:
        return self._full
