"""The worker sandbox: real confined processes on this machine, both where namespaces hold and
in the fallback (forced by replacing the probed capabilities, so its code path really runs)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from workbench import sandbox

REPO = Path(__file__).resolve().parent.parent
HAVE_NAMESPACES = sandbox.available().pid_namespace
needs_namespaces = pytest.mark.skipif(not HAVE_NAMESPACES, reason="this machine refuses the namespaces: "
                                      + "; ".join(sandbox.available().notes))


@pytest.fixture(params=["namespaces", "fallback"])
def mode(request, monkeypatch):
    if request.param == "namespaces":
        if not HAVE_NAMESPACES:
            pytest.skip("this machine refuses the namespaces")
    else:
        monkeypatch.setattr(sandbox, "_available", sandbox.Confinement(notes=["fallback forced by the test"]))
    return request.param


def alive(pid: int) -> bool:
    return sandbox.start_time(pid) is not None


def wait_gone(pids, timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [p for p in left if alive(p)]
    return left


# A child that starts a daemon (new session, double fork), which reports its pid as the host's
# /proc sees it (/proc/self under the host's /proc), then both wait to be killed.
DAEMON_CHILD = textwrap.dedent("""
    import os, sys, time
    r, w = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(w, (os.readlink("/proc/self") + "\\n").encode())
            time.sleep(120)
        os._exit(0)
    daemon = os.read(r, 64).decode().strip()
    print(os.readlink("/proc/self"), daemon, flush=True)
    if sys.argv[1] == "stay":
        time.sleep(120)
""")


def test_worker_env_allow_list_keeps_what_cuda_needs_and_no_secret():
    base = {"PATH": "/usr/bin", "LC_ALL": "C", "CUDA_VISIBLE_DEVICES": "0", "NCCL_NVLS_ENABLE": "0",
            "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1", "HOME": "/root",
            "OPENAI_API_KEY": "sk-test-1234567890", "CUDA_AUTH_TOKEN": "abcdefgh12", "NVIDIA_KEY": "short",
            "HF_HUB_OFFLINE": "1",
            "LD_LIBRARY_PATH": "/opt/lib:sk-test-1234567890", "SSH_AUTH_SOCK": "/tmp/agent", "EDITOR": "vi"}
    env = sandbox.worker_env(base, Path("/scratch/w1"))
    assert env == {"PATH": "/usr/bin", "LC_ALL": "C", "CUDA_VISIBLE_DEVICES": "0", "NCCL_NVLS_ENABLE": "0",
                   "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1",
                   "HOME": "/scratch/w1", "TMPDIR": "/scratch/w1"}


def test_child_environment_has_no_keys(mode, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-test-0000")
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-test-0000")
    monkeypatch.setenv("NCCL_NVLS_ENABLE", "0")
    read_env = "import json, os; print(json.dumps(dict(os.environ)))"
    proc, conf = sandbox.spawn([sys.executable, "-c", read_env], scratch=tmp_path, readonly=[],
                               stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=30)
    seen = json.loads(out)
    assert "OPENAI_API_KEY" not in seen and "GEMINI_API_KEY" not in seen
    assert not any("test-0000" in v for v in seen.values())
    assert seen["NCCL_NVLS_ENABLE"] == "0"
    assert seen["HOME"] == seen["TMPDIR"] == str(tmp_path.resolve()) == conf.scratch


@needs_namespaces
def test_write_into_readonly_path_fails_and_nothing_changes(tmp_path):
    guarded = tmp_path / "guarded"
    (guarded / "sub").mkdir(parents=True)
    (guarded / "reference.py").write_text("A = 1\n")
    (guarded / "sub" / "verify.py").write_text("B = 2\n")
    free = guarded / "free"  # writable inside a read-only tree
    free.mkdir()
    before = sandbox.digest([guarded / "reference.py", guarded / "sub"])
    attack = textwrap.dedent(f"""
        import os, shutil
        g = {str(guarded)!r}
        tries = {{
            "overwrite": lambda: open(g + "/reference.py", "w").write("A = 2"),
            "append": lambda: open(g + "/sub/verify.py", "a").write("#"),
            "create": lambda: open(g + "/new.py", "w"),
            "delete": lambda: os.unlink(g + "/reference.py"),
            "rename": lambda: os.rename(g + "/sub", g + "/sub2"),
            "chmod": lambda: os.chmod(g + "/reference.py", 0o777),
            "rmtree": lambda: shutil.rmtree(g + "/sub"),
        }}
        for name, f in tries.items():
            try:
                f()
                print(name, "DONE")
            except OSError as e:
                print(name, "refused", e.errno)
        open(g + "/free/out.txt", "w").write("ok")
        open("scratch.txt", "w").write("ok")
    """)
    proc, conf = sandbox.spawn([sys.executable, "-c", attack], scratch=tmp_path / "scratch", readonly=[guarded],
                               writable=[free], stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=30)
    lines = out.decode().splitlines()
    assert len(lines) == 7 and all("refused" in line for line in lines), lines
    assert sandbox.digest([guarded / "reference.py", guarded / "sub"]) == before
    assert not (guarded / "new.py").exists()
    assert (free / "out.txt").read_text() == "ok" and (tmp_path / "scratch" / "scratch.txt").read_text() == "ok"
    assert conf.readonly == [str(guarded.resolve())] and conf.mount_namespace


@needs_namespaces
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make device nodes (without root, modes guard devices)")
def test_only_listed_devices_open_and_kernel_knobs_are_read_only(tmp_path):
    # Two null devices (harmless to open) that root's file permissions alone would let cmd use:
    # one among the host's /dev, one inside a read-only tree.
    in_dev = Path(f"/dev/workbench-test-null-{os.getpid()}")
    in_tree = tmp_path / "tree" / "null"
    in_tree.parent.mkdir()
    os.mknod(in_dev, 0o666 | 0o020000, os.makedev(1, 3))
    os.mknod(in_tree, 0o666 | 0o020000, os.makedev(1, 3))
    probe = textwrap.dedent(f"""
        import os
        for path in ("/dev/null", {str(in_dev)!r}, {str(in_tree)!r}):
            try:
                os.close(os.open(path, os.O_RDONLY))
                print(path, "opened")
            except OSError as e:
                print(path, "refused", e.errno)
        try:
            open("/proc/sys/vm/swappiness", "r+")
            print("sysctl WRITABLE")
        except OSError as e:
            print("sysctl refused", e.errno)
    """)
    try:
        proc, _ = sandbox.spawn([sys.executable, "-c", probe], scratch=tmp_path / "s", readonly=[in_tree.parent],
                                stdout=subprocess.PIPE)
        out, _ = proc.communicate(timeout=30)
    finally:
        in_dev.unlink()
    assert out.decode().splitlines() == ["/dev/null opened", f"{in_dev} refused 13", f"{in_tree} refused 13",
                                         "sysctl refused 30"]


@needs_namespaces
@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm here")
def test_dev_shm_is_private_but_a_scratch_there_is_shared():
    other = Path(f"/dev/shm/workbench-test-other-{os.getpid()}")
    other.write_text("theirs")
    scratch = Path(f"/dev/shm/workbench-test-scratch-{os.getpid()}")
    probe = textwrap.dedent(f"""
        import multiprocessing, os
        print(sorted(os.listdir("/dev/shm")))
        open({str(other)!r}, "w").write("mine")
        open("out.txt", "w").write("result")
        multiprocessing.Lock()
        print("lock ok")
    """)
    try:
        proc, _ = sandbox.spawn([sys.executable, "-c", probe], scratch=scratch, readonly=[Path("/")],
                                stdout=subprocess.PIPE)
        out, _ = proc.communicate(timeout=30)
        assert out.decode().splitlines() == [str([scratch.name]), "lock ok"]
        assert other.read_text() == "theirs" and (scratch / "out.txt").read_text() == "result"
    finally:
        other.unlink()
        for f in scratch.glob("*"):
            f.unlink()
        scratch.rmdir()


@needs_namespaces
def test_hidden_directory_looks_empty_and_stays_intact(tmp_path):
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    (home / ".config" / "credentials").write_text("sk-on-disk-0000")
    look = f"import os\nprint(sorted(os.listdir({str(home)!r})))\ntry:\n open({str(home)!r} + '/x', 'w')\n" \
           "except OSError as e:\n print('refused', e.errno)"
    proc, conf = sandbox.spawn([sys.executable, "-c", look], scratch=tmp_path / "s", readonly=[], hidden=[home],
                               stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=30)
    assert out.decode().splitlines() == ["[]", "refused 30"]
    assert (home / ".config" / "credentials").read_text() == "sk-on-disk-0000" and not (home / "x").exists()
    assert f"hidden: {home.resolve()}" in conf.notes
    with pytest.raises(ValueError, match="cannot hide"):
        sandbox.spawn([sys.executable, "-c", "pass"], scratch=home / "scratch", readonly=[], hidden=[home])


@needs_namespaces
def test_hidden_file_reads_empty_and_stays_intact(tmp_path):
    secret = tmp_path / ".netrc"
    secret.write_text("machine x login me password hunter2\n")
    look = (f"print(repr(open({str(secret)!r}).read()))\ntry:\n open({str(secret)!r}, 'w').write('mine')\n"
            "except OSError as e:\n print('refused', e.errno)")  # a write goes to /dev/null, or is refused
    proc, _ = sandbox.spawn([sys.executable, "-c", look], scratch=tmp_path / "s", readonly=[Path("/")], hidden=[secret],
                            stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=30)
    assert out.decode().splitlines()[0] == "''"
    assert secret.read_text() == "machine x login me password hunter2\n"


def test_the_worker_hides_credential_stores_of_the_judges_home(tmp_path, monkeypatch):
    from workbench.worker_process import credential_files

    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".netrc").write_text("x")
    (home / ".bashrc").write_text("x")  # not a credential store: stays visible
    monkeypatch.setenv("HOME", str(home))
    found = credential_files()
    assert home / ".ssh" in found and home / ".netrc" in found and home / ".bashrc" not in found
    assert Path("/etc/shadow") in found or not Path("/etc/shadow").exists()


@needs_namespaces
def test_child_cannot_remount_readonly_path_writable(tmp_path):
    guarded = tmp_path / "guarded"
    guarded.mkdir()
    attack = textwrap.dedent(f"""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        g = {str(guarded)!r}.encode()
        rc_remount = libc.mount(None, g, None, 32 | 4096, None)  # MS_REMOUNT | MS_BIND, read-write
        rc_umount = libc.umount2(g, 2)                            # MNT_DETACH: uncover the writable tree
        def wrote():
            try:
                open({str(guarded)!r} + "/x", "w")
                return True
            except OSError:
                return False
        print(rc_remount, rc_umount, wrote())
        # A user namespace of its own (where unprivileged ones are allowed) holds every
        # capability there, but only locked copies of the mounts.
        if libc.unshare(0x10000000 | 0x00020000) == 0:  # CLONE_NEWUSER | CLONE_NEWNS
            print(libc.mount(None, g, None, 32 | 4096, None), libc.umount2(g, 2), wrote())
        else:
            print(-1, -1, False)
    """)
    proc, _ = sandbox.spawn([sys.executable, "-c", attack], scratch=tmp_path / "s", readonly=[guarded],
                            stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=30)
    assert out.split() == [b"-1", b"-1", b"False"] * 2
    assert not (guarded / "x").exists()


def test_setsid_daemon_is_gone_when_kill_returns(mode, tmp_path):
    proc, _ = sandbox.spawn([sys.executable, "-c", DAEMON_CHILD, "stay"], scratch=tmp_path, readonly=[],
                            stdout=subprocess.PIPE)
    child, daemon = (int(p) for p in proc.stdout.readline().split())
    assert alive(child) and alive(daemon)
    sandbox.kill(proc)
    assert not alive(daemon) and not alive(child)


def test_daemon_ends_when_its_worker_exits_on_its_own(mode, tmp_path):
    proc, _ = sandbox.spawn([sys.executable, "-c", DAEMON_CHILD, "leave"], scratch=tmp_path, readonly=[],
                            stdout=subprocess.PIPE)
    child, daemon = (int(p) for p in proc.stdout.readline().split())
    assert proc.wait(timeout=30) == 0
    assert wait_gone([daemon], timeout_s=3.0) == []


PARENT = textwrap.dedent("""
    import subprocess, sys, time
    from pathlib import Path
    from workbench import sandbox
    if sys.argv[1] == "fallback":
        sandbox._available = sandbox.Confinement(notes=["fallback forced by the test"])
    proc, _ = sandbox.spawn([sys.executable, "-c", sys.argv[3], "stay"], scratch=Path(sys.argv[2]), readonly=[],
                            stdout=subprocess.PIPE)
    line = proc.stdout.readline().decode().strip()
    below = [p for p in sandbox.descendants(proc.pid) if sandbox.start_time(p)]  # zombies are dead already
    print(proc.pid, *sorted(set(below) | {int(p) for p in line.split()}), flush=True)
    time.sleep(120)
""")


def test_sigkill_of_the_parent_leaves_no_child_or_grandchild(mode, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, mode, str(tmp_path), DAEMON_CHILD],
                              stdout=subprocess.PIPE, env=env)
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) >= 3 and all(alive(p) for p in pids), pids  # outer, child, daemon (+ init)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        assert wait_gone(pids, timeout_s=5.0) == []
    finally:
        parent.kill()
        parent.wait()


@needs_namespaces
@pytest.mark.parametrize("new_proc", [False, True])
def test_judge_process_is_out_of_reach(tmp_path, monkeypatch, new_proc):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-test-0000")
    here = os.getpid()
    probe = textwrap.dedent(f"""
        import os, signal
        for what in ("environ", "mem", "root/etc/hostname"):
            try:
                open("/proc/{here}/" + what, "rb").read(1)
                print(what, "READ")
            except OSError as e:
                print(what, "refused", e.errno)
        try:
            os.kill({here}, 0)
            print("signal", "SENT")
        except OSError as e:
            print("signal", "refused", e.errno)
    """)
    proc, conf = sandbox.spawn([sys.executable, "-c", probe], scratch=tmp_path, readonly=[], new_proc=new_proc,
                               stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=30)
    lines = out.decode().splitlines()
    assert len(lines) == 4 and all("refused" in line for line in lines), lines
    assert ("own /proc" in conf.notes) == new_proc


@needs_namespaces
def test_network_is_unreachable_and_reachable_when_asked(tmp_path):
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    port = server.getsockname()[1]
    connect = f"import socket\ntry:\n socket.create_connection(('127.0.0.1', {port}), timeout=2)\n print('connected')\n" \
              "except OSError as e:\n print('refused', e.errno)"
    results = {}
    with server:
        for network in (False, True):
            proc, conf = sandbox.spawn([sys.executable, "-c", connect], scratch=tmp_path, readonly=[],
                                       stdout=subprocess.PIPE, network=network)
            out, _ = proc.communicate(timeout=30)
            try:
                server.accept()[0].close()
                reached = True
            except OSError:
                reached = False
            results[network] = (out.decode().split()[0], reached, conf.network_namespace)
    assert results[False] == ("refused", False, True)
    assert results[True] == ("connected", True, False)


def test_kill_raises_nothing_and_waits_for_an_exited_process(mode, tmp_path):
    proc, _ = sandbox.spawn([sys.executable, "-c", "pass"], scratch=tmp_path, readonly=[])
    proc.wait(timeout=30)
    sandbox.kill(proc)
    assert proc.returncode == 0


def test_setup_failure_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sandbox.spawn([sys.executable, "-c", "pass"], scratch=tmp_path, readonly=[tmp_path / "missing"])
    with pytest.raises(RuntimeError, match="sandbox setup failed"):
        sandbox.spawn(["/nonexistent/program"], scratch=tmp_path, readonly=[])


def test_descendants_finds_grandchildren():
    script = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);" \
             " print('up', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, start_new_session=True)
    try:
        proc.stdout.readline()
        below = sandbox.descendants(proc.pid)
        assert len(below) == 1 and sandbox.descendants(below[0]) == []
    finally:
        sandbox.kill(proc)
    assert not alive(below[0])


def test_digest_changes_with_contents_and_names_not_pycache(tmp_path):
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    paths = [tmp_path / "pkg", tmp_path / "b.py"]
    first = sandbox.digest(paths)
    assert sandbox.digest(list(reversed(paths))) == first
    (tmp_path / "pkg" / "__pycache__" / "a.pyc").write_bytes(b"\0")
    assert sandbox.digest(paths) == first
    (tmp_path / "pkg" / "a.py").write_text("x = 2\n")
    changed = sandbox.digest(paths)
    assert changed != first
    (tmp_path / "pkg" / "a.py").rename(tmp_path / "pkg" / "c.py")
    assert sandbox.digest(paths) not in (first, changed)
    assert sandbox.judge_digest() == sandbox.judge_digest() and len(sandbox.judge_digest()) == 64


def test_confinement_summary_says_what_held():
    full = sandbox.Confinement(True, True, True, False, ["/repo"], "/s", ["own /proc"])
    assert full.summary() == "namespaces (pid, mount, net); read-only: /repo; no network; scratch /s; own /proc"
    assert "fallback" in sandbox.Confinement().summary() and "network reachable" in sandbox.Confinement().summary()


def _cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()


@pytest.mark.gpu
@needs_namespaces
@pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA device")
def test_cuda_works_confined_under_a_read_only_root(tmp_path):
    """With the namespace's own /proc, as the judge starts its workers. (Without it, CUDA fails in a new
    PID namespace with error 304 from cudaGetDeviceCount: measured on the H200.)"""
    use_cuda = "import torch\nx = torch.ones(1 << 20, device='cuda')\n" \
               "print(int((x * 2).sum().item()), torch.cuda.get_device_name())"
    proc, conf = sandbox.spawn([sys.executable, "-c", use_cuda], scratch=tmp_path, readonly=[Path("/")],
                               new_proc=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert int(out.split()[0]) == 1 << 21, out  # exact in float32
