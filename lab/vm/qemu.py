"""One lab VM: qemu-system-x86_64 under TCG, launched by PID inside the bridge's netns.

The VM boots Debian's kernel with the busybox initramfs, mounts the host's
root read-only over 9p, and runs stage2.sh and the agent from this checkout.
Its console goes to ``console.log`` in the VM's workdir; QMP (``stop``,
``cont``, ``quit``) and the agent's virtio-serial port are unix sockets there.
/dev/kvm is not usable here (kvm_pvm: stock kernels hang), hence TCG; a
translation buffer of 64 MiB keeps qemu near 300 MiB RSS instead of ~1 GiB.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.vm import net
from lab.vm.guest import Guest
from lab.vm.initramfs import ensure_initramfs
from lab.vm.kernel import KernelTree

QEMU = "qemu-system-x86_64"
HERE = Path(__file__).resolve().parent
MEMORY_MB = 512
BOOT_TIMEOUT_S = 120.0
STOP_WAIT_S = 10.0


class VmError(RuntimeError):
    """A VM could not be started, or did not answer."""


@dataclass
class Vm:
    """A running VM: its qemu PID, sockets, tap, and (once booted) its command channel."""

    name: str
    address: str
    workdir: Path
    bridge_ns: str
    tap: str
    proc: subprocess.Popen[bytes]
    guest: Guest | None = None
    boot_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def ip(self) -> str:
        return self.address.split("/", 1)[0]

    @property
    def console(self) -> Path:
        return self.workdir / "console.log"

    @property
    def qmp_socket(self) -> Path:
        return self.workdir / "qmp.sock"

    @property
    def agent_socket(self) -> Path:
        return self.workdir / "agent.sock"

    @property
    def agent(self) -> Guest:
        if self.guest is None:
            raise VmError(f"VM {self.name} is not booted")
        return self.guest

    def alive(self) -> bool:
        return self.proc.poll() is None

    def qmp(self, command: str, **arguments: Any) -> dict[str, Any]:
        """Run one QMP command (``stop``, ``cont``, ``quit``, ...); its reply."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10.0)
            s.connect(str(self.qmp_socket))
            reader = s.makefile("r")
            json.loads(reader.readline())  # greeting
            last: dict[str, Any] = {"execute": command}
            if arguments:
                last["arguments"] = arguments
            for cmd in ({"execute": "qmp_capabilities"}, last):
                s.sendall((json.dumps(cmd) + "\n").encode())
                while True:
                    reply: dict[str, Any] = json.loads(reader.readline())
                    if "return" in reply or "error" in reply:
                        break
            if "error" in reply:
                raise VmError(f"QMP {command}: {reply['error']}")
            return reply

    def console_tail(self, chars: int = 3000) -> str:
        try:
            return self.console.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def qemu_argv(
    tree: KernelTree, initrd: Path, vm_name: str, address: str, mac: str, tap: str, workdir: Path
) -> list[str]:
    cmdline = " ".join(
        [
            "console=ttyS0",
            "loglevel=5",
            "panic=-1",
            f"harbor.stage2={HERE / 'stage2.sh'}",
            f"harbor.ip={address}",
            f"harbor.hostname={vm_name}",
            f"harbor.udev={tree.udev_root}",
            f"harbor.python={sys.executable}",
            f"harbor.agent={HERE / 'agent.py'}",
        ]
    )
    return [
        QEMU,
        "-name", vm_name,
        "-accel", "tcg,tb-size=64",
        "-m", str(MEMORY_MB),
        "-smp", "1",
        "-nodefaults",
        "-no-user-config",
        "-display", "none",
        "-no-reboot",
        "-kernel", str(tree.vmlinuz),
        "-initrd", str(initrd),
        "-append", cmdline,
        "-serial", f"file:{workdir / 'console.log'}",
        "-fsdev", "local,id=hr,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=hr,mount_tag=hostroot",
        "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
        "-device", f"virtio-net-pci,netdev=n0,mac={mac}",
        "-chardev", f"socket,id=agent,path={workdir / 'agent.sock'},server=on,wait=off",
        "-device", "virtio-serial-pci",
        "-device", "virtserialport,chardev=agent,name=harbor.agent",
        "-qmp", f"unix:{workdir / 'qmp.sock'},server=on,wait=off",
    ]  # fmt: skip


def launch(
    tree: KernelTree,
    *,
    name: str,
    address: str,
    mac: str,
    bridge_ns: str,
    tap: str,
    workdir: Path,
) -> Vm:
    """Create the tap, start qemu in the bridge's netns, wait until the guest agent answers.

    On failure everything started here is stopped again (VM by PID, tap).
    """
    initrd = ensure_initramfs(tree)
    workdir.mkdir(parents=True, exist_ok=True)
    net.add_tap(bridge_ns, tap)
    started = time.monotonic()
    argv = ["nsenter", f"--net=/run/netns/{bridge_ns}", *qemu_argv(
        tree, initrd, name, address, mac, tap, workdir)]  # fmt: skip
    try:
        with (workdir / "qemu.log").open("ab") as out:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
    except OSError:
        net.del_link(bridge_ns, tap)
        raise
    vm = Vm(name=name, address=address, workdir=workdir, bridge_ns=bridge_ns, tap=tap, proc=proc)
    try:
        deadline = time.monotonic() + 20.0
        while not vm.agent_socket.exists():
            if not vm.alive() or time.monotonic() > deadline:
                raise VmError(
                    f"qemu for {name} did not start: {(workdir / 'qemu.log').read_text()}"
                )
            time.sleep(0.05)
        vm.guest = Guest(vm.agent_socket)
        vm.guest.wait_ready(BOOT_TIMEOUT_S)
        vm.boot_s = time.monotonic() - started
    except BaseException as exc:
        console = vm.console_tail()
        stop(vm)
        if isinstance(exc, Exception):
            raise VmError(f"VM {name} did not boot: {exc}\n--- console ---\n{console}") from exc
        raise
    return vm


def stop(vm: Vm) -> None:
    """Kill the VM by PID (it holds no state worth a clean shutdown) and remove its tap."""
    if vm.guest is not None:
        vm.guest.close()
    if vm.alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(vm.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            vm.proc.wait(STOP_WAIT_S)
    net.del_link(vm.bridge_ns, vm.tap)
