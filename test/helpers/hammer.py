"""
One client of test/daemon/concurrency.test.ts: a fixed number of operations on an apsim
mount, chosen by a seeded RNG, each recorded as a JSON line on stdout.

    python3 hammer.py ROOT SEED PROC COUNT UUID...

Writes: {"p", "k", "path", "data", "res"} (res: bytes written or errno name, "open:ERR"
when the open failed). Reads of an mdev's `matrix`: {"p", "k", "read", "text"} (text null
when the read failed: "err").
"""
import errno
import json
import os
import random
import sys

root, seed, proc, count, uuids = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
rng = random.Random(seed * 1000 + proc)
M = "devices/vfio_ap/matrix"
T = M + "/mdev_supported_types/vfio_ap-passthrough"
ADAPTERS = ["4", "5", "6", "7", "0x5", "0x6"]
DOMAINS = ["4", "0x47", "0xab", "0xff", "16", "0x10"]


def ename(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def write(path, data):
    try:
        fd = os.open(os.path.join(root, path), os.O_WRONLY)
    except OSError as e:
        return "open:" + ename(e)
    try:
        return os.write(fd, data.encode("latin1"))
    except OSError as e:
        return ename(e)
    finally:
        os.close(fd)


out = []
for k in range(count):
    r = rng.random()
    u = rng.choice(uuids)
    if r < 0.20:
        path = "%s/%s/matrix" % (M, u)
        try:
            with open(os.path.join(root, path), "rb") as f:
                text = f.read().decode("latin1")
            out.append({"p": proc, "k": k, "read": path, "text": text})
        except OSError as e:
            out.append({"p": proc, "k": k, "read": path, "text": None, "err": ename(e)})
        continue
    if r < 0.40:
        path, data = "%s/%s/assign_adapter" % (M, u), rng.choice(ADAPTERS) + "\n"
    elif r < 0.58:
        path, data = "%s/%s/assign_domain" % (M, u), rng.choice(DOMAINS) + "\n"
    elif r < 0.66:
        path, data = "%s/%s/unassign_adapter" % (M, u), rng.choice(ADAPTERS) + "\n"
    elif r < 0.74:
        path, data = "%s/%s/unassign_domain" % (M, u), rng.choice(DOMAINS) + "\n"
    elif r < 0.80:
        path, data = "bus/ap/apmask", rng.choice(["+4", "-4", "+5", "-5", "+6", "-6", "+7", "-7"]) + "\n"
    elif r < 0.85:
        path, data = "bus/ap/aqmask", rng.choice(["+4", "-4", "+0x47", "-0x47", "+0xab", "-0xab"]) + "\n"
    elif r < 0.93:
        path, data = T + "/create", u + "\n"
    else:
        path, data = "%s/%s/remove" % (M, u), "1\n"
    out.append({"p": proc, "k": k, "path": path, "data": data, "res": write(path, data)})

for rec in out:
    sys.stdout.write(json.dumps(rec) + "\n")
