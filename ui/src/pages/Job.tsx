import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { useCallback, useEffect, useRef, useState, type ReactNode } from "react";
import { problem, scheduler, type ApiProblem } from "../api";
import { Confirm, duration, ErrorBox, LinkBadge, StateBadge, time } from "../components/common";
import { Dag, type DagNode, type NodeState } from "../components/Dag";
import { JobEvent_Type, Job_State, Task_State, type Job, type JobEvent, type Task } from "../gen/odin/scheduler/v1/scheduler_pb";
import { href } from "../router";
import { resilient, timeSlicer, useFrameBatch, type Link } from "../stream";

const TERMINAL = new Set([Job_State.SUCCEEDED, Job_State.FAILED, Job_State.CANCELLED]);

interface Step {
  seq: bigint;
  state: string;
  reason: string;
  message: string;
  time: Timestamp | undefined;
}

/** Per task, per attempt: the state changes the job's events recorded. */
type Attempts = Map<string, Map<number, Step[]>>;

async function allTasks(parent: string, signal: AbortSignal): Promise<Task[]> {
  const tasks: Task[] = [];
  let pageToken = "";
  do {
    const reply = await scheduler.listTasks({ parent, pageSize: 1000, pageToken }, { signal });
    tasks.push(...reply.tasks);
    pageToken = reply.nextPageToken;
  } while (pageToken);
  return tasks;
}

function taskId(name: string): string {
  return name.split("/tasks/")[1] ?? name;
}

/** A task's state as the events left it (the snapshot's until the first newer event). */
interface Live extends NodeState {
  reason: string;
  message: string;
}

function live(t: Task): Live {
  return { state: Task_State[t.state], attempt: t.attempt, reason: t.reason, message: t.message };
}

export function JobPage({ id }: { id: string }): ReactNode {
  const name = `jobs/${id}`;
  const [job, setJob] = useState<Job | null>(null);
  // The snapshot's tasks (details for the panel), the DAG's structure (its identity changes only
  // with a new snapshot, so the layout is computed once) and the states the events move.
  const [tasks, setTasks] = useState<Map<string, Task>>(new Map());
  const [structure, setStructure] = useState<DagNode[]>([]);
  const [states, setStates] = useState<Map<string, Live>>(new Map());
  const [detail, setDetail] = useState<Task | null>(null);
  const [error, setError] = useState<ApiProblem | null>(null);
  const [actionError, setActionError] = useState<ApiProblem | null>(null);
  const [link, setLink] = useState<Link>("connecting");
  const [selected, setSelected] = useState("");
  const [confirm, setConfirm] = useState<"cancel" | "retry" | null>(null);
  const [watchRun, setWatchRun] = useState(0);
  const [showSpec, setShowSpec] = useState(false);
  const attempts = useRef<Attempts>(new Map());
  const selectedRef = useRef(selected);
  const received = useRef(0); // WatchJob events received (data-events, read by bench/ui_job_dag.py)
  const refreshDetail = useRef<() => void>(() => undefined);
  const [, setAttemptsVersion] = useState(0);
  const batch = useFrameBatch();

  const refreshAll = useCallback(async (signal: AbortSignal) => {
    const [reply, list] = await Promise.all([scheduler.getJob({ name }, { signal }), allTasks(name, signal)]);
    setJob(reply.job ?? null);
    setTasks(new Map(list.map((t) => [taskId(t.name), t])));
    setStructure(list.map((t) => ({ name: taskId(t.name), depends: t.depends })));
    setStates(new Map(list.map((t) => [taskId(t.name), live(t)])));
    return reply.job;
  }, [name]);

  // The selected task's details (outputs, times, exit code) are read when it is selected and again
  // shortly after an event changed it; the other tasks' states come from the events alone.
  useEffect(() => {
    selectedRef.current = selected;
    setDetail(null);
    if (!selected) return;
    const stop = new AbortController();
    let timer: number | undefined;
    const read = (): void => {
      timer = undefined;
      scheduler.getTask({ name: `${name}/tasks/${selected}` }, { signal: stop.signal })
        .then((r) => setDetail(r.task ?? null), () => undefined);
    };
    read();
    refreshDetail.current = () => { timer ??= window.setTimeout(read, 300); };
    return () => {
      stop.abort();
      window.clearTimeout(timer);
      refreshDetail.current = () => undefined;
    };
  }, [name, selected, watchRun]);

  // Snapshot (GetJob FULL + ListTasks, in parallel), then WatchJob from the first event: the replay
  // gives each task's attempt history, and events newer than the snapshot move the states live,
  // applied once per animation frame however many arrive.
  useEffect(() => {
    const stop = new AbortController();
    let cursor = 0n;
    let snapshotSeq = -1n;
    let jobState = Job_State.UNSPECIFIED;
    const queue: JobEvent[] = [];
    attempts.current = new Map(); // the replay from the first event rebuilds it (after a retry too)
    const slice = timeSlicer();

    function apply(): void {
      const events = queue.splice(0);
      let jobChange: JobEvent | undefined;
      const changes = new Map<string, JobEvent>();
      for (const e of events) {
        if (e.seq <= snapshotSeq) continue;
        if (e.task) changes.set(taskId(e.task), e);
        jobChange = e;
      }
      if (jobChange) {
        const last = jobChange;
        setJob((old) => old && {
          ...old, state: last.jobState,
          reason: last.type === JobEvent_Type.JOB_STATE_CHANGED ? last.reason : old.reason,
          message: last.type === JobEvent_Type.JOB_STATE_CHANGED ? last.message : old.message,
        });
      }
      if (changes.size) {
        setStates((old) => {
          const next = new Map(old);
          for (const [n, e] of changes) {
            const t = next.get(n);
            if (t) next.set(n, { state: Task_State[e.taskState], attempt: e.attempt || t.attempt, reason: e.reason, message: e.message });
          }
          return next;
        });
        if (changes.has(selectedRef.current)) refreshDetail.current();
      }
      setAttemptsVersion((v) => v + 1);
    }

    void resilient(async (signal, markLive) => {
      if (snapshotSeq < 0n) {
        const snapshot = await refreshAll(signal);
        snapshotSeq = snapshot?.lastEventSeq ?? 0n;
        jobState = snapshot?.state ?? Job_State.UNSPECIFIED;
        // Let the snapshot be drawn before the replay (thousands of events for a large job) is parsed.
        await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
      }
      markLive();
      for await (const message of scheduler.watchJob({ name, afterSeq: cursor }, { signal })) {
        markLive();
        if (message.kind.case === "heartbeat") {
          if (message.kind.value.latestSeq > cursor) cursor = message.kind.value.latestSeq;
          continue;
        }
        if (message.kind.case !== "event") continue;
        const e = message.kind.value;
        cursor = e.seq;
        jobState = e.jobState;
        received.current++;
        if (e.task) {
          const n = taskId(e.task);
          const perTask = attempts.current.get(n) ?? new Map<number, Step[]>();
          attempts.current.set(n, perTask);
          const steps = perTask.get(e.attempt) ?? [];
          perTask.set(e.attempt, steps);
          steps.push({ seq: e.seq, state: Task_State[e.taskState], reason: e.reason, message: e.message, time: e.time });
        }
        queue.push(e);
        batch(apply);
        await slice();
      }
      // The server ends the stream after the job's last event (or when it stops: then reconnect).
      return TERMINAL.has(jobState);
    }, stop.signal, (s) => {
      setLink(s.link);
      if (s.error) setError(s.error);
    });
    return () => stop.abort();
  }, [name, watchRun, refreshAll, batch]);

  async function act(kind: "cancel" | "retry"): Promise<void> {
    setConfirm(null);
    setActionError(null);
    try {
      const reply = kind === "cancel"
        ? await scheduler.cancelJob({ name, message: "cancelled from the console" })
        : await scheduler.retryJob({ name });
      if (reply.job) setJob((old) => old && { ...reply.job!, spec: old.spec, parameters: old.parameters });
      if (kind === "retry") setWatchRun((n) => n + 1);
    } catch (err) {
      setActionError(problem(err));
    }
  }

  if (!job) {
    return <div className="page"><h2>{id}</h2>{error ? <ErrorBox error={error} /> : <p className="muted">Loading…</p>}</div>;
  }
  const base = detail && taskId(detail.name) === selected ? detail : tasks.get(selected);
  const now = states.get(selected);
  // The newest of the panel's read and the events: an event newer than the read wins.
  const task = base && now && (now.attempt > base.attempt || (now.attempt === base.attempt && now.state !== Task_State[base.state]))
    ? { ...base, state: Task_State[now.state as keyof typeof Task_State], attempt: now.attempt, reason: now.reason, message: now.message }
    : base;
  const terminal = TERMINAL.has(job.state);
  return (
    <div className="page job-page" data-events={received.current}>
      <div className="page-head">
        <h2>{id}</h2>
        <span data-testid="job-state"><StateBadge state={Job_State[job.state]} /></span>
        <LinkBadge link={link} />
        <span className="spacer" />
        <button type="button" className="danger" disabled={terminal} onClick={() => setConfirm("cancel")}>Cancel job</button>
        <button type="button" disabled={!terminal || job.state === Job_State.SUCCEEDED} onClick={() => setConfirm("retry")}>Retry job</button>
      </div>
      <ErrorBox error={error} />
      <ErrorBox error={actionError} />
      <dl className="facts">
        <dt>Pipeline</dt><dd>{job.pipeline}{job.revision ? ` @ ${job.revision.slice(0, 10)}` : ""}</dd>
        <dt>Owner</dt><dd>{job.owner}</dd>
        {job.project ? <><dt>Project</dt><dd>{job.project}</dd></> : null}
        <dt>Reason</dt><dd data-testid="job-reason">{job.reason} {job.message ? <span className="muted">— {job.message}</span> : null}</dd>
        <dt>Created</dt><dd>{time(job.createTime)}</dd>
        <dt>Duration</dt><dd>{duration(job.startTime, job.endTime)}</dd>
        <dt>Labels</dt><dd>{Object.entries(job.labels).map(([k, v]) => <code key={k} className="label">{k}={v}</code>)}</dd>
      </dl>
      <div className="job-body">
        <Dag structure={structure} states={states} selected={selected} onSelect={setSelected} />
        {task ? <TaskPanel job={id} task={task} attempts={attempts.current.get(selected)} /> : (
          <aside className="task-panel muted">Select a task to see its attempts, reasons, outputs and logs.</aside>
        )}
      </div>
      <h3><button type="button" className="linkish" onClick={() => setShowSpec((s) => !s)}>
        {showSpec ? "▾" : "▸"} Rendered spec</button></h3>
      {showSpec ? <pre className="spec" data-testid="spec">{JSON.stringify(job.spec ?? {}, null, 2)}</pre> : null}
      <Confirm open={confirm === "cancel"} title={`Cancel ${id}?`} confirmLabel="Cancel job"
        onConfirm={() => void act("cancel")} onCancel={() => setConfirm(null)}>
        <p>Running tasks are stopped; no new task starts.</p>
      </Confirm>
      <Confirm open={confirm === "retry"} title={`Retry ${id}?`} confirmLabel="Retry job"
        onConfirm={() => void act("retry")} onCancel={() => setConfirm(null)}>
        <p>Failed, cancelled and skipped tasks run again.</p>
      </Confirm>
    </div>
  );
}

function TaskPanel({ job, task, attempts }: { job: string; task: Task; attempts: Map<number, Step[]> | undefined }): ReactNode {
  const n = taskId(task.name);
  const numbers = [...new Set([...(attempts?.keys() ?? []), task.attempt])].filter((a) => a > 0).sort((a, b) => a - b);
  return (
    <aside className="task-panel" data-testid="task-panel">
      <h3>{n} <StateBadge state={Task_State[task.state]} /></h3>
      <dl className="facts">
        <dt>Attempt</dt><dd>{task.attempt} of {task.maxAttempts}</dd>
        <dt>Reason</dt><dd>{task.reason} {task.message ? <span className="muted">— {task.message}</span> : null}</dd>
        {task.exitCode !== undefined ? <><dt>Exit code</dt><dd>{task.exitCode}</dd></> : null}
        <dt>Started</dt><dd>{time(task.startTime)}</dd>
        <dt>Duration</dt><dd>{duration(task.startTime, task.endTime)}</dd>
        {task.nextAttemptTime ? <><dt>Next attempt</dt><dd>{time(task.nextAttemptTime)}</dd></> : null}
        <dt>Runs as</dt><dd>{task.resourceType} {task.resourceId}</dd>
        <dt>Command</dt><dd><code>{[...task.command, ...task.args].join(" ")}</code></dd>
        <dt>Depends on</dt><dd>{task.depends.join(", ") || "—"}</dd>
      </dl>
      <h4>Outputs</h4>
      <pre className="outputs">{task.outputs && Object.keys(task.outputs).length ? JSON.stringify(task.outputs, null, 2) : "—"}</pre>
      <h4>Attempts</h4>
      <table className="attempts" data-testid="attempts">
        <thead><tr><th>#</th><th>States</th><th>Duration</th><th>Logs</th></tr></thead>
        <tbody>
          {numbers.map((a) => {
            const steps = attempts?.get(a) ?? [];
            const started = steps.find((s) => s.state === "RUNNING")?.time;
            const last = steps[steps.length - 1];
            const ended = last && ["SUCCEEDED", "FAILED", "CANCELLED", "QUEUED"].includes(last.state) ? last.time : undefined;
            return (
              <tr key={a} data-attempt={a}>
                <td>{a}</td>
                <td>{steps.map((s) => (
                  <div key={String(s.seq)}><StateBadge state={s.state} /> {s.reason}
                    {s.message ? <span className="muted"> — {s.message}</span> : null}
                    <span className="muted"> {s.time ? timestampDate(s.time).toLocaleTimeString() : ""}</span></div>
                ))}</td>
                <td>{duration(started, ended)}</td>
                <td><a href={href(`/jobs/${job}/tasks/${n}/logs`, { attempt: String(a) })}>logs #{a}</a></td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </aside>
  );
}
