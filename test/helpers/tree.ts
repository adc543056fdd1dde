/**
 * In-process views of a whole simulated tree, for tests that prove a refused operation
 * changed nothing: every readable attribute, link target and directory listing.
 */
import { SysfsError } from '../../lib/errors.js'
import type { Host } from '../../lib/host.js'
import type { Node } from '../../lib/sysfs.js'

/** Every readable attribute, link target and directory listing under the tree (not the control tree). */
export function snapshot (host: Host): Map<string, string> {
  const out = new Map<string, string>()
  const walk = (node: Node, path: string): void => {
    if (path === 'kernel/debug') return
    if (node.kind === 'link') { out.set(path, `-> ${node.target}`); return }
    if (node.kind === 'attr') {
      if (node.show === undefined || (node.mode & 0o444) === 0) { out.set(path, `(mode ${node.mode.toString(8)})`); return }
      try { out.set(path, node.show()) } catch (e) { out.set(path, `(read error ${(e as SysfsError).code})`) }
      return
    }
    const entries = node.entries()
    out.set(`${path}/`, entries.map(e => e.name).join(' '))
    for (const e of entries) {
      const n = node.lookup(e.name)
      if (n !== undefined) walk(n, path === '' ? e.name : `${path}/${e.name}`)
    }
  }
  walk(host.root, '')
  return out
}

/** Paths whose value differs between two snapshots, each shown with `show`. */
export function changes (before: Map<string, string>, after: Map<string, string>, show: (s: string) => string = s => JSON.stringify(s)): string[] {
  const out: string[] = []
  for (const [k, v] of before) if (after.get(k) !== v) out.push(`${k}: ${show(v)} -> ${after.has(k) ? show(after.get(k) ?? '') : '(gone)'}`)
  for (const k of after.keys()) if (!before.has(k)) out.push(`${k}: (new)`)
  return out
}
