/**
 * What the shell shows, shared by the tests that go through the mount: glibc's strerror()
 * text for each errno (what bash, cat and coreutils print), and a limit on how many
 * simulated hosts one test file mounts at once (the machines have 2 CPUs).
 */
import type { Errno } from '../../lib/errors.js'

export const STRERROR: Record<Errno, string> = {
  EACCES: 'Permission denied',
  EADDRINUSE: 'Address already in use',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  EAGAIN: 'Resource temporarily unavailable',
  EBUSY: 'Device or resource busy',
  EDQUOT: 'Disk quota exceeded',
  EEXIST: 'File exists',
  EFBIG: 'File too large',
  EINTR: 'Interrupted system call',
  EINVAL: 'Invalid argument',
  EIO: 'Input/output error',
  EISDIR: 'Is a directory',
  ELOOP: 'Too many levels of symbolic links',
  ENODEV: 'No such device',
  ENOENT: 'No such file or directory',
  ENOMEM: 'Cannot allocate memory',
  ENOSPC: 'No space left on device',
  ENOTDIR: 'Not a directory',
  EOPNOTSUPP: 'Operation not supported',
  EPERM: 'Operation not permitted',
  ERANGE: 'Numerical result out of range',
  EROFS: 'Read-only file system',
  ETIMEDOUT: 'Connection timed out',
  EUSERS: 'Too many users'
}

/** Runs `fn` once fewer than `n` others are running (a simple counting semaphore). */
export function limiter (n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0
  const waiting: Array<() => void> = []
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active < n) active++
    else await new Promise<void>(resolve => waiting.push(resolve))
    try {
      return await fn()
    } finally {
      const next = waiting.shift()
      if (next !== undefined) next(); else active--
    }
  }
}

/** At most two mounts at a time per test file. */
export const mountSlot = limiter(2)
