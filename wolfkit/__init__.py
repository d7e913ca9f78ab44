"""wolfkit — scan a universe, build a diversified pack, pack two leverage layers, execute at the open."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wolfkit")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"
