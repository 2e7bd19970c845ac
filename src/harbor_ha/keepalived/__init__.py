"""keepalived adapter: notify_fifo reader, track files, config rendering, VIP check.

Knows only keepalived, the kernel's addresses (rtnetlink), harbor_ha.runner, harbor_ha.settings
and logging.
"""

from harbor_ha.keepalived.errors import (
    BadFifoLine,
    FifoError,
    KeepalivedError,
    RenderError,
    TrackFileError,
    VipCheckError,
)
from harbor_ha.keepalived.fifo import FifoReader
from harbor_ha.keepalived.fifo_grammar import FifoLine, parse_line
from harbor_ha.keepalived.render import check_config, render_config
from harbor_ha.keepalived.trackfile import TrackFiles, read_track_file, write_track_file
from harbor_ha.keepalived.vip import vip_present

__all__ = [
    "BadFifoLine",
    "FifoError",
    "FifoLine",
    "FifoReader",
    "KeepalivedError",
    "RenderError",
    "TrackFileError",
    "TrackFiles",
    "VipCheckError",
    "check_config",
    "parse_line",
    "read_track_file",
    "render_config",
    "vip_present",
    "write_track_file",
]
