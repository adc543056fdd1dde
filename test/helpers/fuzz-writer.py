"""
The write fuzzer of test/daemon/fuzz.test.ts: random write(2)s to the writable files of an
apsim mount, the way C and Python clients issue them, one JSON line per write on stdout.

    python3 fuzz-writer.py ROOT SEED SECONDS FILES... (paths relative to ROOT; a file named
    `restore` gets junk paths instead of random bytes)

Every record: {"i", "path", "how", "len", "res", "ms"}: res has [length, result] per write(2),
result being the byte count it returned or the errno name it failed with ("open:ENOENT"
when the open failed); a dd run is one entry, "ok" or its errno.
Every second a heartbeat thread reads bus/ap/bindings ({"beat": ms or errno}); a write
blocked for 3 s (an mdev `remove` while a guest the fuzzer started holds it) makes the
watchdog stop the guests ({"unblock": path}). Exits 0 when the time is up; a hang shows as
a missing "done" line.
"""
import errno
import json
import os
import random
import sys
import threading
import time

root, seed, seconds, files = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
rng = random.Random(seed)
out = sys.stdout


lock = threading.Lock()


def emit(rec):
    with lock:
        out.write(json.dumps(rec) + "\n")
        out.flush()


def ename(e):
    return errno.errorcode.get(e.errno, str(e.errno))


# dd reports "dd: error writing 'F': <strerror>": back to the errno name
STRERROR = {os.strerror(n): name for n, name in errno.errorcode.items()}


TOKENS = [b"1", b"0", b"5", b"0x47", b"+4", b"-5,-6", b"0xff", b"vfio_ap", b"cex4queue", b"on", b"auto",
          b"add", b"change 1234 A=B", b"05.0004", b"card05", b"1d6c9a2e-3f4b-4c5d-8e6f-7a8b9c0d1e2f",
          b"0x06,0x08,0x", b"scan", b"add-adapter 9 CEX8 cca", b"start g9 1d6c9a2e-3f4b-4c5d-8e6f-7a8b9c0d1e2f",
          b"99999999999999999999", b"", b"-", b"+", b"0X41"]


def payload(kind):
    """The bytes of one buffer of a given shape."""
    if kind == "random":
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 65)))
    if kind == "token":
        t = rng.choice(TOKENS)
        return t + rng.choice([b"\n", b"", b"\n\n", b"\r\n", b" "])
    if kind == "nul":
        t = rng.choice(TOKENS)
        i = rng.randrange(len(t) + 1)
        return t[:i] + b"\0" + t[i:] + rng.choice([b"", b"\n", b"\0junk"])
    if kind in ("4095", "4096", "4097"):
        n = int(kind)
        fill = rng.choice([b"f", b"0", b"\0", b"1", b"x"])
        return (rng.choice(TOKENS) + fill * n)[:n]
    if kind == "1MiB":
        return (rng.choice([b"0x", b"+", b"", b"1"]) + rng.choice([b"f", b"\0", b"1,"]) * (1 << 20))[: 1 << 20]
    raise ValueError(kind)


def write_all(fd, buf, chunk):
    """A C/Python-style loop: write what is left in pieces of `chunk` until done or an error; [len, result] per write(2)."""
    done = 0
    results = []
    while done < len(buf):
        piece = buf[done:done + chunk]
        r = single(fd, piece)
        results.append(r)
        if not isinstance(r[1], int) or r[1] <= 0:
            return results
        done += r[1]
    return results


JUNK_PATHS = [b"", b"\n", b"/nonexistent/state.json", b"relative/path", b"/etc/hostname", b"/", b"/proc/self/status",
              b"/tmp", b"\0/etc/hostname", b"x" * 5000, b"/etc/../etc/hostname\n", None]


def one(i, rel):
    path = os.path.join(root, rel)
    t0 = time.monotonic()
    rec = {"i": i, "path": rel}
    if os.path.basename(rel) == "restore":
        junk = rng.choice(JUNK_PATHS)
        buf = (os.path.join(root, "bus/ap/apmask").encode() if junk is None else junk)
        how, chunk, flags, count = "restore", 0, os.O_WRONLY, 1
    else:
        how = rng.choice(["random", "random", "token", "token", "nul", "4095", "4096", "4097", "1MiB",
                          "append", "multi", "chunked", "dd"])
        flags = os.O_WRONLY | (os.O_APPEND if how == "append" else 0) | (os.O_TRUNC if rng.random() < 0.5 else 0)
        count = rng.randrange(2, 6) if how == "multi" else 1
        chunk = rng.choice([1, 3, 7, 13, 4095]) if how == "chunked" else 0
        kind = {"append": "token", "multi": rng.choice(["token", "random", "nul"]), "chunked": rng.choice(["token", "4097", "random"]),
                "dd": rng.choice(["token", "random", "4097"])}.get(how, how)
        buf = payload(kind)
    rec["how"] = how
    rec["len"] = len(buf)
    if how == "dd":
        # dd is a C client: one write(2) per block of an odd size
        import subprocess
        bs = rng.choice([1, 5, 7, 4096] if len(buf) <= 100 else [7, 13, 4096])
        global current
        current = (i, rel, time.monotonic(), 15)  # a dd run is many write(2)s: the watchdog waits longer
        try:
            p = subprocess.run(["dd", "of=" + path, "bs=%d" % bs, "status=none"], input=buf, capture_output=True, timeout=60)
        finally:
            current = None
        err = p.stderr.decode("latin1").strip().split("\n")[0]
        rec["bs"] = bs
        if p.returncode == 0:
            rec["res"] = [[len(buf), "ok"]]
        else:
            why = err.rsplit(": ", 1)[-1]
            rec["res"] = [[len(buf), ("open:" if "failed to open" in err else "") + STRERROR.get(why, "dd? " + err)]]
    else:
        try:
            fd = os.open(path, flags)
        except OSError as e:
            rec["res"] = [[len(buf), "open:" + ename(e)]]
            rec["ms"] = round((time.monotonic() - t0) * 1000, 1)
            return rec
        try:
            res = []
            for _ in range(count):
                res += write_all(fd, buf, chunk) if chunk else [single(fd, buf)]
                if count > 1:
                    buf = payload(rng.choice(["token", "random", "nul"]))
            rec["res"] = res
        finally:
            os.close(fd)
    rec["ms"] = round((time.monotonic() - t0) * 1000, 1)
    return rec


def single(fd, buf):
    """One write(2): [len, bytes written or errno name]. The watchdog sees how long it takes."""
    global current
    current = (op_index, op_path, time.monotonic(), 3)
    try:
        return [len(buf), os.write(fd, buf)]
    except OSError as e:
        return [len(buf), ename(e)]
    finally:
        current = None


def beat():
    t0 = time.monotonic()
    try:
        with open(os.path.join(root, "bus/ap/bindings"), "rb") as f:
            f.read()
        return round((time.monotonic() - t0) * 1000, 1)
    except OSError as e:
        return ename(e)


# The write(2) in progress, for the watchdog: (index, path, start time, seconds it may take) or None.
current = None
op_index, op_path = 0, ""


def watchdog():
    """
    Heartbeats from a thread of their own (the daemon must answer while a write blocks), and
    the guest's side of a blocking mdev `remove`: the fuzzer may start a guest through
    `guests` and later write 1 to `remove`, which then blocks as in the kernel until the
    guest stops. After 3 s in one write(2) every guest is stopped.
    """
    next_beat = 0.0
    while not finished:
        now = time.monotonic()
        if now >= next_beat:
            emit({"beat": beat()})
            next_beat = now + 1
        cur = current
        if cur is not None and now - cur[2] > cur[3]:
            try:
                with open(os.path.join(root, "kernel/debug/apsim/guests"), "rb") as f:
                    names = [line.split()[0] for line in f.read().decode("latin1").splitlines() if line.strip()]
                for n in names:
                    fd = os.open(os.path.join(root, "kernel/debug/apsim/guests"), os.O_WRONLY)
                    try:
                        os.write(fd, b"stop " + n.encode("latin1"))
                    finally:
                        os.close(fd)
                emit({"unblock": cur[1], "i": cur[0], "stopped": names})
            except OSError as e:
                emit({"unblock": cur[1], "i": cur[0], "error": ename(e)})
            time.sleep(1)
        time.sleep(0.1)


groups = {}
for f in files:
    groups.setdefault(os.path.basename(f), []).append(f)
names = sorted(groups)
finished = False
dog = threading.Thread(target=watchdog, daemon=True)
dog.start()
end = time.monotonic() + seconds
i = 0
while time.monotonic() < end:
    # every kind of file (by name) equally often, then one of that name
    rel = rng.choice(groups[rng.choice(names)])
    op_index, op_path = i, rel
    emit(one(i, rel))
    i += 1
finished = True
dog.join()
emit({"beat": beat()})
emit({"done": i})
