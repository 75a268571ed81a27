// A task's logs: followed live, then read from the log store once the attempt ended. Lines live in
// one array (slices of the received pieces) and only the visible ones are rendered
// (@tanstack/react-virtual), so 100 MB of output neither freezes the tab nor fills its memory.
import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useRef, useState, type ReactNode } from "react";
import { problem, scheduler, type ApiProblem } from "../api";
import { ErrorBox, LinkBadge, StateBadge } from "../components/common";
import { Task_State, type Task } from "../gen/odin/scheduler/v1/scheduler_pb";
import { href, navigate, useRoute } from "../router";
import { resilient, useFrameBatch, type Link } from "../stream";

const ROW = 18;
const encoder = new TextEncoder();

class LogText {
  chunks: string[] = [];
  lines: string[] = [];
  partial = "";
  bytes = 0;

  append(data: string): void {
    this.chunks.push(data);
    const parts = data.split("\n");
    const first = parts[0] ?? "";
    if (parts.length === 1) {
      this.partial += first;
      return;
    }
    this.lines.push(this.partial + first);
    for (let i = 1; i < parts.length - 1; i++) this.lines.push(parts[i] ?? "");
    this.partial = parts[parts.length - 1] ?? "";
  }

  get count(): number {
    return this.lines.length + (this.partial ? 1 : 0);
  }

  line(i: number): string {
    return i < this.lines.length ? this.lines[i] ?? "" : this.partial;
  }
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
  const text = useRef(new LogText());
  const scroller = useRef<HTMLDivElement>(null);
  const batch = useFrameBatch();

  useEffect(() => {
    scheduler.getTask({ name }).then((r) => setInfo(r.task ?? null), (err) => setError(problem(err)));
  }, [name, link]);

  useEffect(() => {
    const stop = new AbortController();
    text.current = new LogText();
    setVersion((v) => v + 1);
    let next = 0n;
    void resilient(async (signal, markLive) => {
      for await (const piece of scheduler.streamTaskLogs({ name, follow: true, offset: next, attempt }, { signal })) {
        markLive();
        text.current.append(piece.data);
        next = piece.offset + BigInt(encoder.encode(piece.data).length);
        text.current.bytes = Number(next);
        batch(() => setVersion((v) => v + 1));
      }
      return true;
    }, stop.signal, (s) => {
      setLink(s.link);
      setError(s.error);
    });
    return () => stop.abort();
  }, [name, attempt, batch]);

  const log = text.current;
  const count = log.count;
  const virtualizer = useVirtualizer({
    count, getScrollElement: () => scroller.current, estimateSize: () => ROW, overscan: 20,
  });

  useEffect(() => {
    if (follow && count > 0) virtualizer.scrollToIndex(count - 1, { align: "end" });
  }, [count, follow, virtualizer]);

  // Search in slices of 50,000 lines per task, so a 100 MB log keeps the page responsive.
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
      for (; i < end; i++) if (log.line(i).toLowerCase().includes(needle)) found.push(i);
      if (i < log.count) {
        setTimeout(step, 0);
      } else {
        setSearching(false);
        setMatches(found);
        if (found.length) {
          setFollow(false);
          virtualizer.scrollToIndex(found[0] ?? 0, { align: "center" });
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
    virtualizer.scrollToIndex(matches[at] ?? 0, { align: "center" });
  }

  function download(): void {
    const url = URL.createObjectURL(new Blob(log.chunks, { type: "text/plain" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = `${job}--${task}-attempt-${attempt || info?.attempt || 1}.log`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  const attempts = Array.from({ length: Math.max(info?.attempt ?? 0, attempt) }, (_, i) => i + 1);
  const matchSet = new Set(matches);
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
      <div className="log" ref={scroller} data-testid="log" onWheel={() => setFollow(false)}>
        <div style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
          {virtualizer.getVirtualItems().map((row) => (
            <div key={row.index} className={`log-line${matchSet.has(row.index) ? " match" : ""}${matches[current] === row.index ? " current" : ""}`}
              style={{ position: "absolute", top: 0, transform: `translateY(${row.start}px)`, height: ROW }}>
              <span className="ln">{row.index + 1}</span>{log.line(row.index)}
            </div>
          ))}
        </div>
      </div>
    </div>
  );
}
