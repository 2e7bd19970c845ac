"""The lab's Harbor-like stack of real programs (registry, PostgreSQL, Redis, nginx) built from
Debian packages: ``images`` builds and caches the images, ``stack`` renders and drives the
compose project, ``harbor_core`` is the small health component inside the ``core`` image."""
