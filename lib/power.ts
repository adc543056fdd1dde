/**
 * The driver core's `power/` directory, present in every device directory. AP and mdev
 * devices have runtime PM disabled, so it reads as such; `control` takes `on` or `auto`.
 * The values written to `control` are per device (by devpath) and part of the host's state.
 */
import { fail } from './errors.js'
import { cstr } from './parse.js'
import { DirType, type DirNode } from './sysfs.js'

/** Per host: the `power/` directory of the device at a devpath. */
export type PowerDirs = (devpath: string) => DirNode

/** `control` values other than the default `auto`, by devpath. */
export type PowerControl = Map<string, 'on' | 'auto'>

export function powerDirs (control: PowerControl = new Map()): PowerDirs {
  const type = new DirType<string>([
    {
      name: 'control',
      mode: 0o644,
      show: devpath => `${control.get(devpath) ?? 'auto'}\n`,
      store: (devpath, buf) => {
        const v = cstr(buf).replace(/\n$/, '')
        if (v !== 'on' && v !== 'auto') fail('EINVAL', `power/control: ${JSON.stringify(v)} is neither on nor auto`)
        if (v === 'auto') control.delete(devpath)
        else control.set(devpath, v)
      }
    },
    { name: 'runtime_active_time', mode: 0o444, show: () => '0\n' },
    { name: 'runtime_status', mode: 0o444, show: () => 'unsupported\n' },
    { name: 'runtime_suspended_time', mode: 0o444, show: () => '0\n' }
  ])
  return devpath => type.instance(devpath)
}
