"""Settings for the whole suite."""

from __future__ import annotations

import signal

# A shell without job control starts background commands (`cmd &`, `nohup cmd &`) with
# SIGINT ignored, and an ignored signal stays ignored in every child: the tests that press
# Ctrl-C on a real `bakong` process would then see it keep running. A handler (unlike
# SIG_IGN) is not inherited across exec, so installing Python's own gives every child
# the default disposition again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
