/**
 * One error type for everything the model refuses. `code` is the errno name the kernel's
 * store routine would return (the FUSE adapter turns it into `-errno`), `why` says in words
 * which rule refused the operation, for logs and for control-plane callers.
 */
export type Errno =
  | 'EACCES' | 'EADDRINUSE' | 'EADDRNOTAVAIL' | 'EBUSY' | 'EEXIST' | 'EINVAL' | 'EIO'
  | 'ENODEV' | 'ENOENT' | 'ENOMEM' | 'ENOTDIR' | 'EOPNOTSUPP' | 'EPERM' | 'ERANGE' | 'EUSERS'
  | 'ENOSPC' | 'EAGAIN' | 'EINTR' | 'ETIMEDOUT' | 'EISDIR' | 'ELOOP'
  | 'EDQUOT' | 'EROFS' | 'EFBIG'

export class SysfsError extends Error {
  readonly code: Errno
  readonly why: string
  constructor (code: Errno, why: string) {
    super(`${code}: ${why}`)
    this.name = 'SysfsError'
    this.code = code
    this.why = why
  }
}

export function fail (code: Errno, why: string): never {
  throw new SysfsError(code, why)
}

export function isSysfsError (e: unknown): e is SysfsError {
  return e instanceof SysfsError
}
