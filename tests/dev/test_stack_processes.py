import shlex
import sys
from pathlib import Path

from flotta.dev.stack import processes
from flotta.dev.stack.layout import StackLayout, write_json
from flotta.dev.stack.up import AGENT_ENVIRONMENT, agent_command

REPO = Path(__file__).resolve().parents[2]


def test_started_processes_are_recorded_and_stopped_by_pid(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]
    process, record = processes.start("sleeper", argv, log_path=tmp_path / "logs" / "sleeper.log")
    try:
        state = tmp_path / "pids.json"
        processes.save(state, [record])
        [loaded] = processes.load(state)
        assert loaded == record
        assert loaded.is_running()
        assert processes.stop(loaded, timeout=5)
        assert process.wait(timeout=5) is not None
        assert not loaded.is_running()
        assert processes.stop(loaded) is False  # already gone: nothing to do
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_reused_pid_is_not_ours(tmp_path: Path) -> None:
    record = processes.ProcessRecord("other", 1, ("not", "what", "pid", "1", "runs"), "")
    assert not record.is_running()
    assert processes.stop(record) is False


def test_a_state_dir_from_before_the_enrolment_broker_keeps_its_ports(tmp_path: Path) -> None:
    layout = StackLayout(tmp_path / "stack")
    old = {"mqtt": 21001, "nats": 21002, "kube": 21003, "operator_health": 21004}
    old["bridge_health"] = 21005
    write_json(layout.ports_file, old)
    ports = layout.ports()
    assert {name: getattr(ports, name) for name in old} == old
    new = {ports.mqtt_services, ports.mqtt_enrolment}
    assert len(new) == 2
    assert not new & set(old.values())
    assert layout.ports() == ports  # written down: the same ever after


def test_the_stack_runs_the_agent_as_a_device_unit_does(tmp_path: Path) -> None:
    """What ``make up`` shows of the agent (memory, modules) is what a device runs."""
    unit = (REPO / "agent" / "packaging" / "flotta-agent.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    unit_argv = shlex.split(exec_start.removeprefix("ExecStart="))
    stack_argv = agent_command(tmp_path / "agent.toml")
    assert stack_argv[0] == sys.executable
    assert stack_argv[1:-1] == unit_argv[1:-1]
    assert stack_argv[-1] == str(tmp_path / "agent.toml")
    unit_env = dict(
        item.split("=", 1)
        for line in unit.splitlines()
        if line.startswith("Environment=")
        for item in shlex.split(line.removeprefix("Environment="))
    )
    assert unit_env.pop("PYTHONPATH") == "/usr/lib/flotta-agent"  # the stack: its checkout's
    assert unit_env == AGENT_ENVIRONMENT
