"""The monitor's state on OPC UA (gacrystal/monitoring/opcua.py), checked with an asyncua client
on loopback: values read and subscribed to as frames are recorded, read-only, a client that
disconnects never stops the monitor, a port in use gives one line, users and passwords."""
import socket
import time

import pytest

from gacrystal.errors import UserError
from gacrystal.images import list_images
from gacrystal.monitoring import CusumRule, FrameClock, Monitor
from gacrystal.monitoring.opcua import NODES, OpcUaServer
from gacrystal.monitoring.opcua_users import add_user, password_matches, read_users
from probe import BrightnessClassifier, disc_frames

pytest.importorskip("asyncua")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def url_of(port: int) -> str:
    return f"opc.tcp://127.0.0.1:{port}/gacrystal/"


def variables(client, run: str) -> dict:
    run_node = client.nodes.objects.get_child(["2:GAmonitor", f"2:{run}"])
    return {name: run_node.get_child(f"2:{name}") for name, *_ in NODES}


class Changes:
    """Collects a subscription's data changes."""

    def __init__(self):
        self.values = []

    def datachange_notification(self, node, value, data):
        self.values.append(value)


@pytest.fixture
def served(tmp_path):
    frames = tmp_path / "frames"
    disc_frames(frames, count=6, spike=3)
    server = OpcUaServer(url_of(free_port()), run="run1")
    server.start()
    run = Monitor(BrightnessClassifier(), tmp_path / "out", FrameClock("auto"), CusumRule(2),
                  tile_size=64, min_area=2000, overlay_every=0)
    run.on_frame = lambda frame: server.publish(frame, run)
    yield server, run, list_images(frames)
    server.stop()


def test_values_are_read_and_subscribed_to_as_frames_come(served):
    from asyncua import ua
    from asyncua.sync import Client
    server, run, frames = served
    with Client(server.url) as client:
        nodes = variables(client, "run1")
        assert nodes["State"].read_value() == "running" and nodes["FramesDone"].read_value() == 0
        changes = Changes()
        subscription = client.create_subscription(50, changes)
        # every change queued (sampled at 0: on each write), none merged into the next
        subscription.subscribe_data_change(nodes["LastFrame"], queuesize=10, sampling_interval=0)
        run.process(frames[:3])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and frames[2].name not in changes.values:
            time.sleep(0.05)
        assert [f.name for f in frames[:3]] == [v for v in changes.values if v]
        assert nodes["FramesDone"].read_value() == 3
        assert nodes["CountPG"].read_value() == run.frames[-1].summary.pg
        assert nodes["FrameQuality"].read_value() == "good"
        assert nodes["PgFraction"].read_data_value().StatusCode.is_good()
        assert nodes["Alarm"].read_value() is run.alarm_state.fired
        with pytest.raises(ua.UaStatusCodeError):  # read-only for clients
            nodes["CountPG"].write_value(ua.Variant(99, ua.VariantType.Int32))


def test_a_client_that_disconnects_does_not_stop_the_monitor(served):
    from asyncua.sync import Client
    server, run, frames = served
    client = Client(server.url)
    client.connect()
    client.create_subscription(50, Changes()).subscribe_data_change(
        variables(client, "run1")["LastFrame"])
    client.disconnect()
    run.process(frames[:4])  # nobody listens: the monitor goes on
    with Client(server.url) as again:
        nodes = variables(again, "run1")
        assert nodes["LastFrame"].read_value() == frames[3].name
        assert nodes["FramesDone"].read_value() == 4


def test_a_port_in_use_gives_one_clear_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"cannot serve OPC UA at .*:{port}.*another"):
            OpcUaServer(url_of(port), run="run1").start()
    with pytest.raises(UserError, match="opc.tcp://"):
        OpcUaServer("http://127.0.0.1:4840/", run="run1")


def test_with_users_only_they_may_connect(tmp_path):
    from asyncua.sync import Client
    users = tmp_path / "users.txt"
    users.write_text("# operators\n")
    add_user(users, "chemist", ask=lambda prompt: "s3cret")
    assert "s3cret" not in users.read_text() and "chemist:scrypt$" in users.read_text()
    server = OpcUaServer(url_of(free_port()), run="run1", users=str(users))
    server.start()
    try:
        with pytest.raises(Exception):
            with Client(server.url) as anonymous:
                variables(anonymous, "run1")["State"].read_value()
        wrong = Client(server.url)
        wrong.set_user("chemist")
        wrong.set_password("s3cret!")
        with pytest.raises(Exception):
            with wrong:
                variables(wrong, "run1")["State"].read_value()
        client = Client(server.url)
        client.set_user("chemist")
        client.set_password("s3cret")
        with client:
            assert variables(client, "run1")["State"].read_value() == "running"
    finally:
        server.stop()


def test_the_users_file_holds_hashes_and_a_password_in_clear_is_refused(tmp_path):
    users = tmp_path / "users.txt"
    answers = iter(["first", "first", "second", "second", "a", "b"])
    assert add_user(users, "chemist", ask=lambda prompt: next(answers)).startswith("added")
    assert add_user(users, "chemist", ask=lambda prompt: next(answers)).startswith("replaced")
    stored = read_users(users)
    assert list(stored) == ["chemist"] and password_matches(stored["chemist"], "second")
    assert not password_matches(stored["chemist"], "first")
    with pytest.raises(UserError, match="differ; nothing was written"):
        add_user(users, "engineer", ask=lambda prompt: next(answers))
    assert list(read_users(users)) == ["chemist"]
    clear = tmp_path / "old.txt"
    clear.write_text("chemist:s3cret\n")
    with pytest.raises(UserError, match="stored in clear.*--add_opcua_user chemist"):
        read_users(clear)


def test_user_names_on_an_unencrypted_endpoint_must_stay_on_this_machine(tmp_path):
    users = tmp_path / "users.txt"
    add_user(users, "chemist", ask=lambda prompt: "s3cret")
    with pytest.raises(UserError, match="passwords in clear over the network"):
        OpcUaServer("opc.tcp://0.0.0.0:4840/gacrystal/", run="run1", users=str(users))
    with pytest.raises(UserError, match="passwords in clear over the network"):
        OpcUaServer("opc.tcp://plant-pc.local:4840/", run="run1", users=str(users))
    OpcUaServer("opc.tcp://localhost:4840/", run="run1", users=str(users))  # loopback: allowed
    OpcUaServer("opc.tcp://0.0.0.0:4840/", run="run1")  # no users: nothing to leak


def test_a_value_that_was_not_measured_is_bad_no_data_never_nan_and_good(served):
    from asyncua.sync import Client
    server, run, frames = served
    server.write({"CountPG": 3, "PgFraction": None, "PgD50Px": None})  # a frame without particles
    server.write({"CountCEX": 0}, no_data={"CountCEX"})  # a frame that was not good
    with Client(server.url) as client:
        nodes = variables(client, "run1")
        assert nodes["CountPG"].read_data_value().StatusCode.is_good()
        for name in ("PgFraction", "PgD50Px", "CountCEX"):
            value = nodes[name].read_data_value(raise_on_bad_status=False)
            assert value.StatusCode.name == "BadNoData", name


def test_gamonitor_adds_a_user_without_the_password_on_the_command_line(tmp_path, monkeypatch,
                                                                         capsys):
    import GAmonitor
    users = tmp_path / "users.txt"
    monkeypatch.setattr("getpass.getpass", lambda prompt: "s3cret")
    with pytest.raises(UserError, match="--opcua_users FILE too"):
        GAmonitor.main(["--add_opcua_user", "chemist"])
    assert GAmonitor.main(["--opcua_users", str(users), "--add_opcua_user", "chemist"]) == 0
    assert f"added user chemist in {users}" in capsys.readouterr().out
    assert password_matches(read_users(users)["chemist"], "s3cret")
