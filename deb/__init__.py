"""The Debian package of harbor-ha: ``python -m deb.build`` (see build.py) and the man page
generator (manpage.py).  Build-time code: the product never imports it."""
