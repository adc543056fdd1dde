/**
 * Progress of a long operation the user waits on (booting a full-size host, recording a big
 * tree), as one self-overwriting line on stderr, and only when stderr is a terminal: logs and
 * pipes never see it. At most ten updates a second.
 */
export interface Progress {
  /** `done` of `total` units so far. */
  update: (done: number, total: number) => void
  /** Clears the line. */
  end: () => void
}

export function ttyProgress (label: string, unit: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (stream.isTTY !== true) return { update: () => {}, end: () => {} }
  let last = 0
  let shown = false
  return {
    update: (done, total) => {
      const now = Date.now()
      if (now - last < 100 && done < total) return
      last = now
      shown = true
      const pct = total > 0 ? Math.floor(100 * done / total) : 100
      stream.write(`\r\x1b[K${label}: ${done}/${total} ${unit} (${pct}%)`)
    },
    end: () => { if (shown) stream.write('\r\x1b[K') }
  }
}
