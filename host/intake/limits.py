"""The OSC door's documented limits, in one place (the README's "Limits" table lists them).

A request over a limit is refused with ``/audiohost/error <address> <reason naming the limit>``;
a datagram whose structure is broken is dropped and counted as malformed.
"""

from __future__ import annotations

# ---------------------------------------------------------------------- datagrams
RECEIVE_BUFFER_BYTES = 65536  # the listener reads this much: larger than any UDP payload, so nothing arrives cut
MAX_DATAGRAM_BYTES = 32768  # largest datagram accepted (liblo's default maximum message size)
MAX_BUNDLE_DEPTH = 8  # a bundle inside a bundle ... at most this many levels
MAX_MESSAGES_PER_DATAGRAM = 64  # messages in one datagram, counting every nested bundle
MAX_ARRAY_DEPTH = 8  # nested [ ] in a type tag string

# ---------------------------------------------------------------------- request fields (characters)
MAX_PROMPT_CHARS = 1000  # "prompt or preset"
MAX_TAG_CHARS = 256  # the trailing tag echoed in replies
MAX_PATH_CHARS = 1024  # a project (name or path) or an input path
MAX_NAME_CHARS = 100  # a cue name (the cue sheet's own limit)

# integers travel as Python ints; anything past signed 64 bits cannot be a job id, seed or port
INT64_MAX = 2**63 - 1

# ---------------------------------------------------------------------- replies
MAX_REPLY_BYTES = 4096  # no reply datagram is larger; free text is clipped to fit, paths never

# ---------------------------------------------------------------------- log hygiene
DROP_LOG_SECONDS = 10.0  # one "dropped a datagram" line per sender per this many seconds
DROP_LOG_SENDERS = 1024  # senders remembered for that; a flood of spoofed addresses cannot grow it
