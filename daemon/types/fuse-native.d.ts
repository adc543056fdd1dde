/**
 * Types for fuse-native 2.2.6 (no @types exist). Modelled on @cocalc/fuse-native's index.d.ts,
 * corrected against fuse-native's index.js and fuse-native.c:
 * - every callback's first argument is the result: 0 or a negative errno, and for `read` and
 *   `write` the byte count (a second argument is ignored);
 * - `utimens` receives numbers (ms since the epoch), not Dates;
 * - times in a Stat may be Dates or ms numbers.
 */
declare module 'fuse-native' {
  namespace Fuse {
    type Callback = (result: number) => void

    interface Stat {
      mode: number
      uid?: number
      gid?: number
      size?: number
      dev?: number
      nlink?: number
      ino?: number
      rdev?: number
      blksize?: number
      blocks?: number
      atime?: Date | number
      mtime?: Date | number
      ctime?: Date | number
    }

    interface Statfs {
      bsize?: number
      frsize?: number
      blocks?: number
      bfree?: number
      bavail?: number
      files?: number
      ffree?: number
      favail?: number
      fsid?: number
      flag?: number
      namemax?: number
    }

    interface Operations {
      init?: (cb: Callback) => void
      error?: (cb: Callback) => void
      access?: (path: string, mode: number, cb: Callback) => void
      statfs?: (path: string, cb: (result: number, statfs?: Statfs) => void) => void
      getattr?: (path: string, cb: (result: number, stat?: Stat) => void) => void
      /** fuse-native calls `getattr` for fgetattr; this handler only enables the op. */
      fgetattr?: (path: string, fd: number, cb: (result: number, stat?: Stat) => void) => void
      flush?: (path: string, fd: number, cb: Callback) => void
      fsync?: (path: string, datasync: number, fd: number, cb: Callback) => void
      fsyncdir?: (path: string, datasync: number, fd: number, cb: Callback) => void
      /** With `stats` as long as `names`, each entry gets a d_type. The offset is not exposed. */
      readdir?: (path: string, cb: (result: number, names?: string[], stats?: Stat[]) => void) => void
      truncate?: (path: string, size: number, cb: Callback) => void
      ftruncate?: (path: string, fd: number, size: number, cb: Callback) => void
      /** Both times in ms; fuse-native 2.2.6 passes the atime twice. */
      utimens?: (path: string, atime: number, mtime: number, cb: Callback) => void
      readlink?: (path: string, cb: (result: number, linkname?: string) => void) => void
      chown?: (path: string, uid: number, gid: number, cb: Callback) => void
      chmod?: (path: string, mode: number, cb: Callback) => void
      mknod?: (path: string, mode: number, dev: number, cb: Callback) => void
      setxattr?: (path: string, name: string, value: Buffer, position: number, flags: number, cb: Callback) => void
      getxattr?: (path: string, name: string, position: number, cb: (result: number, value?: Buffer | null) => void) => void
      listxattr?: (path: string, cb: (result: number, list?: string[]) => void) => void
      removexattr?: (path: string, name: string, cb: Callback) => void
      open?: (path: string, flags: number, cb: (result: number, fd?: number) => void) => void
      opendir?: (path: string, flags: number, cb: (result: number, fd?: number) => void) => void
      /** `buf` is an external buffer over libfuse memory, detached once `cb` ran. */
      read?: (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErrno: number) => void) => void
      /** `buf` is an external buffer over libfuse memory, detached once `cb` ran. */
      write?: (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErrno: number) => void) => void
      release?: (path: string, fd: number, cb: Callback) => void
      releasedir?: (path: string, fd: number, cb: Callback) => void
      create?: (path: string, mode: number, cb: (result: number, fd?: number) => void) => void
      unlink?: (path: string, cb: Callback) => void
      rename?: (src: string, dest: string, cb: Callback) => void
      link?: (src: string, dest: string, cb: Callback) => void
      symlink?: (src: string, dest: string, cb: Callback) => void
      mkdir?: (path: string, mode: number, cb: Callback) => void
      rmdir?: (path: string, cb: Callback) => void
    }

    /** Numeric options that are 0 are silently dropped by fuse-native (truthiness tests). */
    interface Options {
      debug?: boolean
      force?: boolean
      mkdir?: boolean
      /** ms per op (default 15000), per op name, or false to disable. */
      timeout?: number | false | ({ default?: number } & Record<string, number | false | undefined>)
      allowOther?: boolean
      allowRoot?: boolean
      autoUnmount?: boolean
      defaultPermissions?: boolean
      blkdev?: boolean
      blksize?: number
      maxRead?: number
      fd?: number
      fsname?: string
      subtype?: string
      kernelCache?: boolean
      autoCache?: boolean
      umask?: number
      uid?: number
      gid?: number
      entryTimeout?: number | string
      attrTimeout?: number | string
      acAttrTimeout?: number | string
      noforget?: boolean
      remember?: number
      modules?: string
    }
  }

  class Fuse {
    constructor (mnt: string, ops: Fuse.Operations, opts?: Fuse.Options)
    readonly mnt: string
    readonly opts: Fuse.Options
    /** '' or '-oa,b,c'; the only way to add options fuse-native does not know is to override it. */
    _fuseOptions (): string
    mount (cb: (err: Error | null) => void): void
    unmount (cb: (err: Error | null) => void): void
    errno (code: string): number
    /** Runs `fusermount -uz mnt`. */
    static unmount (mnt: string, cb: (err: Error | null) => void): void

    static EPERM: number
    static ENOENT: number
    static EIO: number
    static EACCES: number
    static ENOTDIR: number
    static EISDIR: number
    static EINVAL: number
    static ENOSYS: number
    static ENOTCONN: number
    static ENXIO: number
  }

  export = Fuse
}
