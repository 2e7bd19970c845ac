"""Pure mountinfo parsing and lookup (no mounts needed)."""

from __future__ import annotations

from harbor_ha.filesystem import MountInfo, is_read_only, mount_at, parse_mountinfo

# Real lines: a systemd host (shared:N optional fields), proc(5)'s example
# (master:N), a loop-mounted ext4 whose path holds a space, a tab and a
# backslash, and an ext4 that errors=remount-ro flipped to ro.
SAMPLE = (
    "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
    "27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard\n"
    "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"
    "41 27 7:3 / /srv/harbor\\040data rw,noatime shared:7 master:2 propagate_from:2 - ext4 "
    "/dev/loop3 rw\n"
    "42 27 7:4 / /srv/tab\\011and\\134slash rw - ext4 /dev/loop4 rw\n"
    "43 27 7:5 / /srv/fenced rw,noatime - ext4 /dev/loop5 ro,errors=remount-ro\n"
    "44 27 7:6 / /srv/fenced618 rw,relatime - ext4 /dev/loop6 rw,errors=remount-ro,emergency_ro\n"
)


def test_parses_fields_and_optional_fields() -> None:
    """Every field lands in its slot, whatever the number of optional fields before ' - '."""
    infos = parse_mountinfo(SAMPLE)
    assert len(infos) == 7
    root = infos[1]
    assert root == MountInfo(
        mount_id=27,
        parent_id=1,
        major=254,
        minor=0,
        root="/",
        mountpoint="/",
        options="rw,relatime",
        fstype="ext4",
        source="/dev/vda",
        super_options="rw,discard",
    )
    ext3 = infos[2]
    assert (ext3.root, ext3.mountpoint, ext3.fstype, ext3.source) == (
        "/mnt1",
        "/mnt/parent",
        "ext3",
        "/dev/root",
    )
    assert ext3.super_options == "rw,errors=continue"
    three_optional = infos[3]
    assert (three_optional.major, three_optional.minor) == (7, 3)
    assert three_optional.fstype == "ext4"
    assert three_optional.source == "/dev/loop3"


def test_octal_escapes_are_decoded() -> None:
    """\\040 (space), \\011 (tab) and \\134 (backslash) in paths are decoded."""
    infos = parse_mountinfo(SAMPLE)
    assert infos[3].mountpoint == "/srv/harbor data"
    assert infos[4].mountpoint == "/srv/tab\tand\\slash"
    assert mount_at("/srv/harbor data", infos) is infos[3]


def test_garbage_lines_are_skipped() -> None:
    """Short or separator-less lines are ignored instead of crashing the daemon."""
    assert parse_mountinfo("\nnot a mountinfo line\n1 2 3 4 5 6 7 8 9 10\n") == []


def test_mount_at_picks_the_top_most_mount() -> None:
    """With mounts stacked on one path, the one no other mount there covers wins (any order)."""
    stacked = (
        "60 27 7:9 / /data rw - ext4 /dev/loop9 rw\n"
        "50 27 0:40 / /data rw - tmpfs tmpfs rw\n"  # the bottom one, listed out of order
        "70 60 7:8 / /data rw - ext4 /dev/loop8 rw\n"  # the top: mounted over 60
        "80 70 7:7 / /data/sub rw - ext4 /dev/loop7 rw\n"
    )
    infos = parse_mountinfo(stacked)
    top = mount_at("/data", infos)
    assert top is not None
    assert (top.mount_id, top.source) == (70, "/dev/loop8")
    assert mount_at("/data/", infos) is top  # lexical normalisation only
    assert mount_at("/dat", infos) is None
    sub = mount_at("/data/sub", infos)
    assert sub is not None and sub.mount_id == 80


def test_read_only_from_mount_or_superblock_options() -> None:
    """ro in the per-mount or superblock options, or ext4's emergency_ro, counts as read-only."""
    infos = parse_mountinfo(SAMPLE)
    assert is_read_only("/srv/fenced", infos) is True
    assert is_read_only("/srv/fenced618", infos) is True  # Linux 6.18's remount-ro
    assert is_read_only("/srv/harbor data", infos) is False
    assert is_read_only("/not/mounted", infos) is False


def test_parsing_only_at_a_path_answers_as_the_whole_table() -> None:
    """parse_mountinfo(text, at=P) keeps exactly the lines that may be a mount at P (the
    escaped path as a whole field), so the top-most mount at P, and its read-only flag, are
    those of the whole table, also for paths with escapes, stacked mounts, a mount whose
    *root* is P, and a path that is only a prefix of a mountpoint."""
    stacked = (
        "60 27 7:9 / /data rw - ext4 /dev/loop9 rw\n"
        "50 27 0:40 / /data rw - tmpfs tmpfs rw\n"
        "70 60 7:8 / /data rw - ext4 /dev/loop8 rw\n"
        "80 70 7:7 / /data/sub rw - ext4 /dev/loop7 rw\n"
        "90 27 7:1 /data /elsewhere rw - ext4 /dev/loop1 rw\n"
        "91 27 7:2 / /dat rw - ext4 /dev/loop2 ro\n"
    )
    text = SAMPLE + stacked
    whole = parse_mountinfo(text)
    paths = ["/data", "/data/", "/data/sub", "/dat", "/srv/harbor data"]
    paths += ["/srv/tab\tand\\slash", "/srv/fenced", "/srv/fenced618", "/", "/none"]
    for path in paths:
        only = parse_mountinfo(text, at=path)
        assert mount_at(path, only) == mount_at(path, whole), path
        assert is_read_only(path, only) == is_read_only(path, whole), path
    assert [m.mount_id for m in parse_mountinfo(text, at="/data")] == [60, 50, 70, 90]
    assert parse_mountinfo(text, at="/none") == []
