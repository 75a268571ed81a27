// A task's logs: followed live, then read from the log store once the attempt ended. The text is
// kept as UTF-8 bytes in 4 MiB blocks with one offset per line (a Uint32Array): a 100 MB log costs
// ~104 MB of ArrayBuffers and ~4 MB of index, not a million JS strings. Only the visible lines are
// decoded and drawn (rows of fixed height, so the visible range is arithmetic).
import { useCallback, useEffect, useLayoutEffect, useRef, useState, type ReactNode } from "react";
import { problem, scheduler, type ApiProblem } from "../api";
import { ErrorBox, LinkBadge, StateBadge } from "../components/common";
import { Task_State, type Task } from "../gen/odin/scheduler/v1/scheduler_pb";
import { href, navigate, useRoute } from "../router";
import { resilient, timeSlicer, useFrameBatch, type Link } from "../stream";

const ROW = 18;
const OVERSCAN = 20;
const BLOCK = 4 << 20;
/** Browsers cap an element's height (~33.5 M px in Chromium); taller logs map the scrollbar onto lines. */
const MAX_HEIGHT = 30_000_000;
const NEWLINE = 10;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class LogBytes {
  private blocks: Uint8Array[] = [];
  private fills: number[] = []; // bytes used in each block
  /** Byte offset where each line starts (line 0 at 0); line i ends at starts[i + 1] (its newline included). */
  private starts = new Uint32Array(4096);
  private lines = 1;
  bytes = 0;

  /** Appends text; returns its length in UTF-8 bytes. */
  append(data: string): number {
    const before = this.bytes;
    let rest = data;
    while (rest.length) {
      let b = this.blocks.length - 1;
      // encodeInto writes whole characters only (at most 4 bytes each): a block with < 4 free is full.
      if (b < 0 || this.fills[b]! + 4 > BLOCK) {
        this.blocks.push(new Uint8Array(BLOCK));
        this.fills.push(0);
        b++;
      }
      const block = this.blocks[b]!;
      const from = this.fills[b]!;
      const { read, written } = encoder.encodeInto(rest, block.subarray(from));
      this.index(block, from, from + written);
      this.fills[b] = from + written;
      this.bytes += written;
      rest = rest.slice(read);
    }
    return this.bytes - before;
  }

  private index(block: Uint8Array, from: number, to: number): void {
    const base = this.bytes - from;
    for (let at = block.indexOf(NEWLINE, from); at !== -1 && at < to; at = block.indexOf(NEWLINE, at + 1)) {
      if (this.lines === this.starts.length) {
        const grown = new Uint32Array(this.starts.length * 2);
        grown.set(this.starts);
        this.starts = grown;
      }
      this.starts[this.lines++] = base + at + 1;
    }
  }

  /** Lines, counting a last one without its newline. */
  get count(): number {
    return this.bytes === 0 ? 0 : this.starts[this.lines - 1] === this.bytes ? this.lines - 1 : this.lines;
  }

  /** The bytes [from, to), copied only when they span blocks. */
  private slice(from: number, to: number): Uint8Array {
    const parts: Uint8Array[] = [];
    let pos = 0;
    for (let b = 0; b < this.blocks.length && from < to; b++) {
      const fill = this.fills[b]!;
      if (from < pos + fill) {
        const end = Math.min(to, pos + fill);
        parts.push(this.blocks[b]!.subarray(from - pos, end - pos));
        from = end;
      }
      pos += fill;
    }
    if (parts.length === 1) return parts[0]!;
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  /** Lines [from, to) as one text, newlines included. */
  text(from: number, to: number): string {
    const start = from < this.lines ? this.starts[from]! : this.bytes;
    const end = to < this.lines ? this.starts[to]! : this.bytes;
    return decoder.decode(this.slice(start, end));
  }

  line(i: number): string {
    const t = this.text(i, i + 1);
    return t.endsWith("\n") ? t.slice(0, -1) : t;
  }

  /** The used part of every block (for a download). */
  parts(): Uint8Array[] {
    return this.blocks.map((b, i) => b.subarray(0, this.fills[i]));
  }
}

/** Where rows go: one ROW per line, or, past MAX_HEIGHT, the scrollbar mapped onto the lines. */
function geometry(count: number): { total: number; scaled: boolean } {
  const natural = count * ROW;
  return natural <= MAX_HEIGHT ? { total: natural, scaled: false } : { total: MAX_HEIGHT, scaled: true };
}

export function LogsPage({ job, task }: { job: string; task: string }): ReactNode {
  const route = useRoute();
  const attempt = Number(route.query.get("attempt") ?? "0");
  const name = `jobs/${job}/tasks/${task}`;
  const [info, setInfo] = useState<Task | null>(null);
  const [error, setError] = useState<ApiProblem | null>(null);
  const [link, setLink] = useState<Link>("connecting");
  const [, setVersion] = useState(0);
  const [follow, setFollow] = useState(true);
  const [search, setSearch] = useState("");
  const [matches, setMatches] = useState<number[]>([]);
  const [current, setCurrent] = useState(0);
  const [searching, setSearching] = useState(false);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewport, setViewport] = useState(600);
  const text = useRef(new LogBytes());
  const scroller = useRef<HTMLDivElement>(null);
  const batch = useFrameBatch();
  const scrollBatch = useFrameBatch();

  useEffect(() => {
    scheduler.getTask({ name }).then((r) => setInfo(r.task ?? null), (err) => setError(problem(err)));
  }, [name, link]);

  useEffect(() => {
    const stop = new AbortController();
    text.current = new LogBytes();
    setVersion((v) => v + 1);
    let next = 0n;
    const slice = timeSlicer();
    void resilient(async (signal, markLive) => {
      for await (const piece of scheduler.streamTaskLogs({ name, follow: true, offset: next, attempt }, { signal })) {
        markLive();
        next = piece.offset + BigInt(text.current.append(piece.data));
        batch(() => setVersion((v) => v + 1));
        await slice();
      }
      return true;
    }, stop.signal, (s) => {
      setLink(s.link);
      setError(s.error);
    });
    return () => stop.abort();
  }, [name, attempt, batch]);

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const resize = new ResizeObserver(() => setViewport(el.clientHeight));
    resize.observe(el);
    setViewport(el.clientHeight);
    return () => resize.disconnect();
  }, []);

  const log = text.current;
  const count = log.count;
  const { total, scaled } = geometry(count);
  const visible = Math.ceil(viewport / ROW);
  // The first visible line and where its row is drawn.
  const first = scaled
    ? Math.floor((scrollTop / Math.max(1, total - viewport)) * Math.max(0, count - visible))
    : Math.floor(scrollTop / ROW);
  const top = (i: number): number => (scaled ? scrollTop + (i - first) * ROW : i * ROW);

  const scrollToIndex = useCallback((i: number, align: "center" | "end") => {
    const el = scroller.current;
    if (!el) return;
    const n = text.current.count;
    const g = geometry(n);
    const rows = Math.ceil(el.clientHeight / ROW);
    const wanted = align === "end" ? i - rows + 1 : i - Math.floor(rows / 2);
    const line = Math.max(0, Math.min(wanted, n - rows));
    el.scrollTop = g.scaled ? (line / Math.max(1, n - rows)) * (g.total - el.clientHeight) : line * ROW;
    setScrollTop(el.scrollTop);
  }, []);

  useLayoutEffect(() => {
    if (follow && count > 0) scrollToIndex(count - 1, "end");
  }, [count, follow, scrollToIndex]);

  // Search over slices of 50,000 lines (each decoded as one text), so a 100 MB log keeps the page responsive.
  useEffect(() => {
    setMatches([]);
    setCurrent(0);
    if (!search) return;
    let cancelled = false;
    const found: number[] = [];
    const needle = search.toLowerCase();
    let i = 0;
    setSearching(true);
    const step = (): void => {
      if (cancelled) return;
      const end = Math.min(log.count, i + 50_000);
      const lines = log.text(i, end).toLowerCase().split("\n");
      for (let k = 0; i < end; i++, k++) if (lines[k]!.includes(needle)) found.push(i);
      if (i < log.count) {
        setTimeout(step, 0);
      } else {
        setSearching(false);
        setMatches(found);
        if (found.length) {
          setFollow(false);
          scrollToIndex(found[0] ?? 0, "center");
        }
      }
    };
    const timer = setTimeout(step, 150);
    return () => {
      cancelled = true;
      clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [search, log]);

  function jump(delta: number): void {
    if (!matches.length) return;
    const at = (current + delta + matches.length) % matches.length;
    setCurrent(at);
    setFollow(false);
    scrollToIndex(matches[at] ?? 0, "center");
  }

  function download(): void {
    const url = URL.createObjectURL(new Blob(log.parts(), { type: "text/plain" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = `${job}--${task}-attempt-${attempt || info?.attempt || 1}.log`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  const attempts = Array.from({ length: Math.max(info?.attempt ?? 0, attempt) }, (_, i) => i + 1);
  const matchSet = new Set(matches);
  const rows: ReactNode[] = [];
  const from = Math.max(0, first - OVERSCAN);
  const to = Math.min(count, first + visible + OVERSCAN);
  if (to > from) {
    const lines = log.text(from, to).split("\n");
    for (let i = from; i < to; i++) {
      rows.push(
        <div key={i} className={`log-line${matchSet.has(i) ? " match" : ""}${matches[current] === i ? " current" : ""}`}
          style={{ position: "absolute", top: 0, transform: `translateY(${top(i)}px)`, height: ROW }}>
          <span className="ln">{i + 1}</span>{lines[i - from]}
        </div>,
      );
    }
  }
  return (
    <div className="page logs-page">
      <div className="page-head">
        <h2><a href={href(`/jobs/${job}`)}>{job}</a> / {task} logs</h2>
        {info ? <StateBadge state={Task_State[info.state]} /> : null}
        <LinkBadge link={link} />
        <span className="muted" data-testid="log-size">{count.toLocaleString()} lines · {(log.bytes / 1048576).toFixed(1)} MiB</span>
      </div>
      <div className="log-tools">
        <span>Attempt:{" "}
          <a className={attempt === 0 ? "active" : ""} href={href(`/jobs/${job}/tasks/${task}/logs`)}>latest</a>
          {attempts.map((a) => (
            <a key={a} className={attempt === a ? "active" : ""} data-testid={`attempt-${a}`}
              href={href(`/jobs/${job}/tasks/${task}/logs`, { attempt: String(a) })}>#{a}</a>
          ))}
        </span>
        <label><input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} /> follow</label>
        <input type="search" placeholder="search" aria-label="search logs" value={search} onChange={(e) => setSearch(e.target.value)} />
        <span className="muted" data-testid="search-count">
          {searching ? "searching…" : search ? `${matches.length ? current + 1 : 0} / ${matches.length} matches` : ""}
        </span>
        <button type="button" onClick={() => jump(-1)} disabled={!matches.length}>↑</button>
        <button type="button" onClick={() => jump(1)} disabled={!matches.length}>↓</button>
        <button type="button" onClick={download}>Download</button>
        <button type="button" onClick={() => navigate(`/jobs/${job}`)}>Back to job</button>
      </div>
      <ErrorBox error={error} />
      <div className="log" ref={scroller} data-testid="log" onWheel={() => setFollow(false)}
        onScroll={(e) => {
          const el = e.currentTarget;
          scrollBatch(() => setScrollTop(el.scrollTop));
        }}>
        <div style={{ height: total, position: "relative" }}>{rows}</div>
      </div>
    </div>
  );
}
