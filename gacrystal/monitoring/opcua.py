"""The monitor's state on OPC UA, for control systems and historians (GAmonitor.py --opcua URL).

    server = OpcUaServer("opc.tcp://127.0.0.1:4840/gacrystal/", run="monitor")
    server.start()                    # a one-line UserError when the port is taken
    server.publish(frame, monitor)    # after each frame is recorded
    server.stop()

asyncua (the maintained pure-Python OPC UA stack) serves, from the monitor's own process, one
object per run under Objects/GAmonitor/, its variables in NODES below (docs/monitoring.md lists them).
The layout follows the OPC UA Analyser Device Integration model where it fits: the device
(GAmonitor) holds its measured values as variables and a state for its condition; the names
are ADI's where it has one (the analyser's "state", "Running") and plain otherwise.

- Read-only for clients: asyncua refuses writes to variables that were not made writable.
- Bound to what the URL names: 127.0.0.1 by default, so only this machine can read it; a URL with
  0.0.0.0 or the machine's address serves the network.
- Encryption: with a certificate and its private key (`opcua_certificate`, `opcua_private_key`:
  a DER or PEM X.509 certificate, e.g. made with `openssl req -x509 -newkey rsa:2048 -nodes
  -keyout key.pem -out cert.pem -days 365 -subj /CN=gacrystal`) the server offers only
  Basic256Sha256 with signing and encryption; without them, no security (fine on localhost).
- User authentication: with `opcua_users` (a file of user names and salted password hashes,
  gacrystal.monitoring.opcua_users) anonymous clients are refused and only those users may
  connect; refused on an unencrypted endpoint that is not bound to loopback (the passwords would
  cross the network in clear).
- A client that disconnects, or never reads, changes nothing for the monitor: values are
  written into the server's address space and clients read or subscribe to them.
A frame that is not good (gacrystal.monitoring.quality) has no counts: its count, fraction and
size variables are written with the status Bad_NoData, so a historian stores the gap; so is any
value a good frame does not give (the PG fraction of a frame without particles, a D50 without PG).
"""
from __future__ import annotations

import datetime as dt
import logging
import math
from pathlib import Path
from urllib.parse import urlparse

from gacrystal.errors import UserError
from gacrystal.monitoring.opcua_users import PasswordUsers, read_users

NAMESPACE = "urn:gacrystal:monitor"
DEVICE = "GAmonitor"
# (browse name, OPC UA type, what it holds); every one is written on every frame
NODES = [
    ("State", "String", "running, probe blind, alarm (PG has appeared) or stopped"),
    ("Running", "Boolean", "the monitor is running"),
    ("ProbeBlind", "Boolean", "several frames in a row were not good (dark, saturated, ...)"),
    ("Alarm", "Boolean", "the onset alarm has fired: PG has appeared"),
    ("AlarmTime", "DateTime", "when the alarm fired (the frame's time); empty before"),
    ("AlarmStatistic", "Double", "the alarm's CUSUM after the last good frame"),
    ("AlarmThreshold", "Double", "the CUSUM above which the alarm fires"),
    ("FalseAlarmEveryHours", "Double", "the false-alarm interval the threshold gives (ARL0)"),
    ("LastFrame", "String", "the last frame's file name"),
    ("LastFrameTime", "DateTime", "the last frame's time"),
    ("FramesDone", "UInt32", "frames recorded in this run's tables"),
    ("FrameQuality", "String", "good, or why not (dark, saturated, out of focus, ...)"),
    ("CountCEX", "Int32", "counted CEX regions in the last frame"),
    ("CountPG", "Int32", "counted PG regions in the last frame"),
    ("CountUnknown", "Int32", "regions unlike the training images in the last frame"),
    ("PgFraction", "Double", "PG / (CEX + PG) in the last frame"),
    ("PgFractionLow", "Double", "the 95% Wilson interval's lower end"),
    ("PgFractionHigh", "Double", "its upper end"),
    ("PgD50Px", "Double", "PG D50 (number-weighted) over the size window, px"),
    ("PgD50Um", "Double", "the same in µm (with um_per_px)"),
]
COUNTED = {"CountCEX", "CountPG", "CountUnknown", "PgFraction", "PgFractionLow",
           "PgFractionHigh"}  # none for a frame that is not good


def check_url(url: str) -> str:
    """The URL, if it is an opc.tcp:// URL with a host and a port; a UserError otherwise."""
    parts = urlparse(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "opc.tcp" or not parts.hostname or not port:
        raise UserError(f"opcua must be a URL like opc.tcp://127.0.0.1:4840/gacrystal/. "
                        f"Received: opcua={url}")
    return url


def is_loopback(host: str) -> bool:
    import ipaddress
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to the network


def check_users_are_safe(url: str, users: str, certificate: str):
    """User names and passwords cross an unencrypted endpoint in clear: refused unless the server
    is bound to this machine only."""
    if users and not certificate and not is_loopback(urlparse(url).hostname):
        raise UserError(f"opcua_users on an unencrypted endpoint would send the passwords in "
                        f"clear over the network ({url}); give opcua_certificate and "
                        "opcua_private_key to encrypt it, or serve on 127.0.0.1")


def check_settings(url: str, certificate: str = "", private_key: str = "", users: str = "") -> str:
    """The one check of the OPC UA settings (GAmonitor.py's before any model loads, and the
    server's): an opc.tcp URL, the files there, both halves of the encryption, and no passwords
    in clear over the network. Returns the URL."""
    url = check_url(url)
    for name, path in (("opcua_certificate", certificate), ("opcua_private_key", private_key),
                       ("opcua_users", users)):
        if path and not Path(path).is_file():
            raise UserError(f"no file at {name}={path}")
    if bool(certificate) != bool(private_key):
        raise UserError("opcua encryption needs both opcua_certificate and opcua_private_key")
    check_users_are_safe(url, users, certificate)
    return url


class OpcUaServer:
    """An OPC UA server with the run's variables; see the module's docstring."""

    def __init__(self, url: str, run: str, certificate: str = "", private_key: str = "",
                 users: str = ""):
        self.url, self.run = check_settings(url, certificate, private_key, users), run
        self.certificate, self.private_key = certificate, private_key
        self.users = read_users(users) if users else None
        try:
            import asyncua  # noqa: F401
        except ImportError:
            raise UserError("--opcua needs the asyncua package: pip install asyncua (or "
                            "pip install -e .[plant] in this checkout)") from None
        self.server = None
        self.variables = {}

    def start(self):
        from asyncua import ua
        from asyncua.sync import Server
        server = Server()
        if self.users:  # the sync wrapper takes no user manager: its asyncio server does
            server.aio_obj.iserver.set_user_manager(PasswordUsers(self.users))
        server.set_endpoint(self.url)
        server.set_server_name(DEVICE)
        if self.certificate:
            server.load_certificate(self.certificate)
            server.load_private_key(self.private_key)
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        if self.users:
            server.set_security_IDs(["Username"])
        index = server.register_namespace(NAMESPACE)
        device = server.nodes.objects.add_object(index, DEVICE)
        run = device.add_object(index, self.run)
        for name, kind, description in NODES:
            variable = run.add_variable(index, name, empty(kind), getattr(ua.VariantType, kind))
            variable.write_attribute(ua.AttributeIds.Description, ua.DataValue(
                ua.Variant(ua.LocalizedText(description), ua.VariantType.LocalizedText)))
            self.variables[name] = (variable, kind)
        quiet = logging.getLogger("asyncua.server.server")  # it logs a traceback before raising
        level, quiet.level = quiet.level, logging.CRITICAL
        try:
            server.start()
        except OSError as error:
            server.tloop.stop()
            raise UserError(f"cannot serve OPC UA at {self.url}: {error.strerror or error} (is "
                            "another monitor or server using the port? choose another with "
                            "--opcua opc.tcp://127.0.0.1:PORT/)") from None
        finally:
            quiet.level = level
        self.server = server
        self.write({"State": "running", "Running": True})

    def write(self, values: dict, no_data: set = frozenset()):
        from asyncua import ua
        for name, value in values.items():
            variable, kind = self.variables[name]
            if isinstance(value, dt.datetime) and value.tzinfo is None:
                value = value.astimezone(dt.timezone.utc)  # a frame's time is local; OPC UA's UTC
            variant = ua.Variant(empty(kind) if value is None else value,
                                 getattr(ua.VariantType, kind))
            # Not measured (a frame that was not good; no fraction without particles, no D50
            # without PG): Bad_NoData, so that a historian stores a gap, never NaN as Good.
            unmeasured = name in no_data or (value is None and kind == "Double")
            status = ua.StatusCode(ua.StatusCodes.BadNoData if unmeasured
                                   else ua.StatusCodes.Good)
            variable.write_value(ua.DataValue(Value=variant, StatusCode=status))

    def publish(self, frame, monitor):
        """The variables after one recorded frame (gacrystal.monitoring.records.FrameRecord)."""
        alarm, summary = frame.alarm, frame.summary
        fired = monitor.frames[alarm.fired_at] if alarm.fired else None
        figures = monitor.alarm.figures
        state = "alarm" if alarm.fired else "probe blind" if frame.blind else "running"
        self.write({
            "State": state, "Running": True, "ProbeBlind": frame.blind, "Alarm": alarm.fired,
            "AlarmTime": fired.time if fired else None, "AlarmStatistic": alarm.statistic,
            "AlarmThreshold": alarm.threshold,
            "FalseAlarmEveryHours": figures.hours(figures.arl0_frames) if figures else None,
            "LastFrame": frame.frame, "LastFrameTime": frame.time, "FramesDone":
                len(monitor.frames), "FrameQuality": frame.quality,
            "CountCEX": summary.cex, "CountPG": summary.pg, "CountUnknown": summary.unknown,
            "PgFraction": summary.pg_fraction, "PgFractionLow": summary.pg_fraction_low,
            "PgFractionHigh": summary.pg_fraction_high, "PgD50Px": frame.pg_d50_px,
            "PgD50Um": frame.pg_d50_um}, no_data=set() if frame.good else COUNTED)

    def stop(self):
        if self.server is not None:
            try:
                self.write({"State": "stopped", "Running": False})
            finally:
                self.server.stop()
                self.server = None


def empty(kind: str):
    """A variable's value before it is known: NaN, 0, "", False or no time."""
    return {"Double": math.nan, "Int32": 0, "UInt32": 0, "String": "", "Boolean": False,
            "DateTime": dt.datetime(1601, 1, 1)}[kind]  # 1601: OPC UA's "no time"

