"""docker-machine compatibility: its machine records (`config.json` with `ConfigVersion` 3) read as they
are (`record`), the docker-machine fields `inspect` shows (`view`), docker-machine's keys in our own configs
(`header`), and `machine import` (`importing`).

The format is docker-machine's libmachine/host `Host` (ConfigVersion, Driver, DriverName, HostOptions,
Name); README.md "Coming from docker-machine" says what users get. Only the standard library is imported
here: `env` and `ls -q` may load docker-machine records, and they must stay fast.
"""
