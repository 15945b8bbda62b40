#!/usr/bin/env python3
"""End-to-end test of mvault with a real Python client.

Writes tensors with numpy + safetensors, seals them with `mvault seal`, then
`mvault run --mount sealed:mnt -- python check_tensors.py` loads them through
the FUSE mount (safetensors' safe_open memory-maps) and checks every byte.
While that command runs, processes outside its tree (this driver, and a
separate Python process) must get EACCES, and the audit log must name them.

With --vault the tensors are sealed as one signed directory vault instead
(`mvault seal plain -o data.vault --sign KEY`), checked without the key by
`mvault verify --pubkey`, and that vault is served.

usage: run_e2e.py --mvault PATH/TO/mvault [--vault] [--keep]
Exit 0 on success; any failure raises with an explanation.
Needs: Linux, FUSE (/dev/fuse, fusermount3), numpy, safetensors.
"""

import argparse
import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tensors  # noqa: E402


def log(msg):
    print(f"e2e: {msg}", flush=True)


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" ")[4] == path for line in f)


def write_plain(plain):
    for name in tensors.SAFETENSORS_FILES:
        save_file(tensors.safetensors_content(name), os.path.join(plain, name))
    np.save(os.path.join(plain, tensors.RAW_NPY), tensors.raw_npy())
    tensors.raw_bin().tofile(os.path.join(plain, tensors.RAW_BIN))


def seal_all(mvault, env, plain, sealed):
    chunks = dict(tensors.SAFETENSORS_FILES)
    chunks[tensors.RAW_NPY] = "64K"
    chunks[tensors.RAW_BIN] = "1M"
    for name, chunk in chunks.items():
        subprocess.run(
            [mvault, "-q", "seal", "--chunk-size", chunk, "-o",
             os.path.join(sealed, name + ".mvlt"), os.path.join(plain, name)],
            env=env, check=True,
        )
    return sorted(chunks)


def seal_vault(mvault, env, plain, work):
    """Seals the folder as a signed directory vault; checks it keylessly."""
    vault, key = os.path.join(work, "data.vault"), os.path.join(work, "signing.key")
    subprocess.run([mvault, "-q", "sign-keygen", "-o", key], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([mvault, "-q", "seal", plain, "-o", vault, "--sign", key], env=env, check=True)
    subprocess.run([mvault, "-q", "verify", vault, "--pubkey", key + ".pub"], env=env, check=True)
    return vault, sorted(os.listdir(plain))


def expect_eacces_here(path):
    try:
        with open(path, "rb") as f:
            f.read(1)
    except PermissionError as e:
        assert e.errno == errno.EACCES, e
        return
    raise AssertionError(f"an outsider (pid {os.getpid()}) could open {path}")


def expect_eacces_in_child(path):
    code = (
        "import errno, sys\n"
        "try:\n"
        f"    open({path!r}, 'rb').read(1)\n"
        "except OSError as e:\n"
        "    sys.exit(13 if e.errno == errno.EACCES else 2)\n"
        "sys.exit(0)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    rc = child.wait(timeout=60)
    assert rc == 13, f"outsider child exited {rc} (13 = EACCES, 0 = it read the file)"
    return child.pid


def audit_denials(audit, pid, inner):
    with open(audit) as f:
        records = [json.loads(line) for line in f]
    return [r for r in records if r.get("decision") == "deny" and r.get("pid") == pid
            and r.get("path") == inner], records


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mvault", required=True)
    ap.add_argument("--vault", action="store_true", help="serve one directory vault")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    mvault = os.path.abspath(args.mvault)

    work = tempfile.mkdtemp(prefix="mvault-e2e-")
    mnt = os.path.join(work, "mnt")
    run = None
    try:
        env = dict(os.environ)
        env.update(HOME=work, XDG_CONFIG_HOME=os.path.join(work, "config"),
                   MVAULT_IDENTITY=os.path.join(work, "identity.txt"))
        env.pop("MVAULT_PASSPHRASE", None)
        plain, sealed = os.path.join(work, "plain"), os.path.join(work, "sealed")
        os.makedirs(plain)
        os.makedirs(sealed)
        subprocess.run([mvault, "-q", "keygen"], env=env, check=True, stdout=subprocess.DEVNULL)
        write_plain(plain)
        if args.vault:
            sealed, names = seal_vault(mvault, env, plain, work)
            log(f"sealed {names} into a signed vault; verify --pubkey ok")
        else:
            names = seal_all(mvault, env, plain, sealed)
            log(f"sealed {names}")

        audit = os.path.join(work, "audit.jsonl")
        ready, go = os.path.join(work, "ready"), os.path.join(work, "go")
        run = subprocess.Popen(
            [mvault, "-q", "run", "--mount", f"{sealed}:{mnt}", "--audit-log", audit, "--",
             sys.executable, os.path.join(HERE, "check_tensors.py"), mnt, ready, go],
            env=env,
        )
        deadline = time.monotonic() + 120
        while not os.path.exists(ready):
            if run.poll() is not None:
                raise AssertionError(f"mvault run exited {run.returncode} before the checks passed")
            if time.monotonic() > deadline:
                raise AssertionError("check_tensors.py did not finish within 120 s")
            time.sleep(0.05)
        log("the permitted command loaded every tensor exactly")

        # Outsiders, while the permitted command still runs.
        inner = "/model.safetensors"
        target = os.path.join(mnt, inner.lstrip("/"))
        expect_eacces_here(target)
        child_pid = expect_eacces_in_child(target)
        from safetensors import safe_open
        try:
            safe_open(target, framework="numpy")
        except OSError:
            pass  # safetensors stats first and reports EACCES as "not found"
        else:
            raise AssertionError("safe_open by an outsider succeeded")
        log("outsiders get EACCES")

        open(go, "w").close()
        rc = run.wait(timeout=120)
        run = None
        assert rc == 0, f"mvault run exited {rc}"
        assert not is_mounted(mnt), "mount left behind"

        exe = os.path.realpath(sys.executable)
        mine, records = audit_denials(audit, os.getpid(), inner)
        assert mine, f"no deny line for the driver (pid {os.getpid()}): {records}"
        assert os.path.realpath(mine[0]["exe"]) == exe, (mine[0], exe)
        theirs, _ = audit_denials(audit, child_pid, inner)
        assert theirs, f"no deny line for the outsider child (pid {child_pid}): {records}"
        allowed = [r for r in records if r.get("event") == "open" and r.get("decision") == "allow"]
        assert {r["path"] for r in allowed} >= {"/" + n for n in names}, allowed
        log(f"audit log: {len(records)} lines, denials for pids {os.getpid()} and {child_pid}")
        log("PASS")
    finally:
        if run is not None:
            open(os.path.join(work, "go"), "w").close()
            try:
                run.wait(timeout=10)
            except subprocess.TimeoutExpired:
                run.kill()
        if is_mounted(mnt):
            subprocess.run(["fusermount3", "-u", "-z", mnt], check=False)
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
