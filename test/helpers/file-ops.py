"""
What the reliability tests ask of one attribute beyond read and write (test/daemon/reliability.test.ts):
mmap, lseek SEEK_DATA/SEEK_HOLE/SEEK_END, xattrs, flock and fcntl locks. Prints `op result`
per line, result `ok`, `ok:VALUE` or the errno name, so the same script run on a real sysfs
attribute and on the mount's gives comparable lines.

    python3 file-ops.py FILE

Nothing is changed: the only xattr set is a user.* one, which sysfs refuses. The private
mapping comes last: on FUSE its page read leaves the cached file size at the text's length.
"""
import errno
import fcntl
import mmap
import os
import struct
import sys


def res(fn):
    try:
        r = fn()
        return 'ok' if r is None else 'ok:' + str(r)
    except OSError as e:
        return errno.errorcode[e.errno]


p = sys.argv[1]
fd = os.open(p, os.O_RDONLY)
ops = [
    ('lseek SEEK_DATA 0', lambda: os.lseek(fd, 0, os.SEEK_DATA)),
    ('lseek SEEK_DATA 100', lambda: os.lseek(fd, 100, os.SEEK_DATA)),
    ('lseek SEEK_DATA 5000', lambda: os.lseek(fd, 5000, os.SEEK_DATA)),
    ('lseek SEEK_HOLE 0', lambda: os.lseek(fd, 0, os.SEEK_HOLE)),
    ('lseek SEEK_END 0', lambda: os.lseek(fd, 0, os.SEEK_END)),
    ('listxattr', lambda: os.listxattr(p)),
    ('getxattr user.x', lambda: os.getxattr(p, 'user.x')),
    ('getxattr security.selinux', lambda: os.getxattr(p, 'security.selinux')),
    ('setxattr user.x', lambda: os.setxattr(p, 'user.x', b'1')),
    ('removexattr user.x', lambda: os.removexattr(p, 'user.x')),
    ('flock LOCK_EX', lambda: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)),
    ('flock LOCK_UN', lambda: fcntl.flock(fd, fcntl.LOCK_UN)),
    ('fcntl F_SETLK F_RDLCK', lambda: fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)),
    ('fcntl F_GETLK F_WRLCK', lambda: struct.unpack('hhqqi', fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack('hhqqi', fcntl.F_WRLCK, 0, 0, 0, 0)))[0]),
    ('fcntl F_SETLK F_UNLCK', lambda: fcntl.lockf(fd, fcntl.LOCK_UN)),
    ('mmap MAP_SHARED', lambda: mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ).close()),
    ('mmap MAP_PRIVATE', lambda: mmap.mmap(fd, 4096, mmap.MAP_PRIVATE, mmap.PROT_READ).close()),
]
for name, fn in ops:
    print(name, res(fn))
