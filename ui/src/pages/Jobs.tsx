import { useCallback, useEffect, useRef, useState, type ReactNode } from "react";
import { auth, problem, scheduler, type ApiProblem } from "../api";
import { duration, ErrorBox, LinkBadge, StateBadge, time } from "../components/common";
import type { Project } from "../gen/odin/auth/v1/auth_pb";
import { JobEvent_Type, Job_State, JobView, type Job } from "../gen/odin/scheduler/v1/scheduler_pb";
import { href, navigate, useRoute } from "../router";
import { resilient, useFrameBatch, type Link } from "../stream";

const PAGE_SIZE = 50;
const STATES = [Job_State.PENDING, Job_State.RUNNING, Job_State.SUCCEEDED, Job_State.FAILED, Job_State.CANCELLED];

interface Filters {
  states: Job_State[];
  pipeline: string;
  owner: string;
  labels: string[];
  project: string;
}

function readFilters(q: URLSearchParams): Filters {
  return {
    states: (q.get("state") ?? "").split(",").filter(Boolean)
      .map((s) => Job_State[s as keyof typeof Job_State]).filter((s) => s !== undefined),
    pipeline: q.get("pipeline") ?? "",
    owner: q.get("owner") ?? "",
    labels: (q.get("label") ?? "").split(",").map((s) => s.trim()).filter(Boolean),
    project: q.get("project") ?? "",
  };
}

function query(f: Filters, after?: string): Record<string, string | undefined> {
  return {
    state: f.states.map((s) => Job_State[s]).join(","), pipeline: f.pipeline, owner: f.owner,
    label: f.labels.join(","), project: f.project, after,
  };
}

export function JobsPage(): ReactNode {
  const route = useRoute();
  const filters = readFilters(route.query);
  const after = route.query.get("after") ?? "";
  const key = JSON.stringify(query(filters, after));
  const [jobs, setJobs] = useState<Job[] | null>(null);
  const [next, setNext] = useState("");
  const [error, setError] = useState<ApiProblem | null>(null);
  const [link, setLink] = useState<Link>("connecting");
  const [projects, setProjects] = useState<Project[] | null>(null);
  const history = useRef<string[]>([]);
  const batch = useFrameBatch();
  const pending = useRef(new Map<string, { state: Job_State; reason: string }>());
  // The newest state each job's events reported: a ListJobs reply read before an event the stream
  // already delivered must not undo it (a new job's RUNNING arriving before the refetch's reply).
  const seen = useRef(new Map<string, { seq: bigint; state: Job_State; reason: string }>());

  const load = useCallback(async (signal?: AbortSignal) => {
    try {
      const reply = await scheduler.listJobs({
        pageSize: PAGE_SIZE, pageToken: after, states: filters.states, pipeline: filters.pipeline,
        owner: filters.owner, labels: filters.labels, project: filters.project, view: JobView.BASIC,
      }, { signal });
      setJobs(reply.jobs.map((job) => {
        const event = seen.current.get(job.name.replace(/^jobs\//, ""));
        return event && event.seq > job.lastEventSeq && event.state !== job.state
          ? { ...job, state: event.state, reason: event.reason || job.reason } : job;
      }));
      setNext(reply.nextPageToken);
      setError(null);
    } catch (err) {
      if (!signal?.aborted) setError(problem(err));
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);

  useEffect(() => {
    const stop = new AbortController();
    void load(stop.signal);
    return () => stop.abort();
  }, [load]);

  useEffect(() => {
    auth.listProjects({ pageSize: 200 }).then((r) => setProjects(r.projects), () => setProjects(null));
  }, []);

  // Live: WatchJobs with the same filters; rows on this page change state in place, and new jobs
  // appear on the first page (refetched at most once a second).
  useEffect(() => {
    const stop = new AbortController();
    let cursor = 0n;
    let refetch: number | undefined;
    void resilient(async (signal, markLive) => {
      const stream = scheduler.watchJobs({
        afterSeq: cursor, pipeline: filters.pipeline, owner: filters.owner, labels: filters.labels,
        project: filters.project,
      }, { signal });
      for await (const message of stream) {
        markLive();
        if (message.kind.case === "heartbeat") {
          if (cursor === 0n) cursor = message.kind.value.latestSeq;
          continue;
        }
        if (message.kind.case !== "event") continue;
        const event = message.kind.value;
        cursor = event.seq;
        const id = event.job.replace(/^jobs\//, "");
        if (event.type === JobEvent_Type.JOB_CREATED && !after && refetch === undefined) {
          refetch = window.setTimeout(() => {
            refetch = undefined;
            void load();
          }, 1000);
        }
        if (event.type !== JobEvent_Type.TASK_PROGRESS) {
          const reason = event.type === JobEvent_Type.JOB_STATE_CHANGED ? event.reason : "";
          seen.current.set(id, { seq: event.seq, state: event.jobState, reason });
          pending.current.set(id, { state: event.jobState, reason });
          batch(() => {
            const changes = pending.current;
            pending.current = new Map();
            setJobs((old) => old && old.map((job) => {
              const change = changes.get(job.name.replace(/^jobs\//, ""));
              return change && change.state !== job.state
                ? { ...job, state: change.state, reason: change.reason || job.reason } : job;
            }));
          });
        }
      }
      return false;
    }, stop.signal, (s) => setLink(s.link));
    return () => {
      stop.abort();
      window.clearTimeout(refetch);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);

  function setFilter(change: Partial<Filters>): void {
    history.current = [];
    navigate("/jobs", query({ ...filters, ...change }));
  }

  return (
    <div className="page">
      <div className="page-head">
        <h2>Jobs</h2>
        <LinkBadge link={link} />
      </div>
      <form className="filters" onSubmit={(e) => {
        e.preventDefault();
        const data = new FormData(e.currentTarget);
        setFilter({
          pipeline: String(data.get("pipeline") ?? "").trim(), owner: String(data.get("owner") ?? "").trim(),
          labels: String(data.get("label") ?? "").split(",").map((s) => s.trim()).filter(Boolean),
          project: String(data.get("project") ?? ""),
        });
      }}>
        <fieldset className="states" aria-label="States">
          {STATES.map((s) => (
            <label key={s}>
              <input type="checkbox" checked={filters.states.includes(s)} onChange={(e) => setFilter({
                states: e.target.checked ? [...filters.states, s] : filters.states.filter((x) => x !== s),
              })} /> {Job_State[s]}
            </label>
          ))}
        </fieldset>
        <input name="pipeline" placeholder="pipeline" defaultValue={filters.pipeline} key={`p${filters.pipeline}`} />
        <input name="owner" placeholder="owner (users/…, users/me)" defaultValue={filters.owner} key={`o${filters.owner}`} />
        <input name="label" placeholder="labels k=v,k2=v2" defaultValue={filters.labels.join(",")} key={`l${filters.labels.join()}`} />
        {projects ? (
          <select name="project" defaultValue={filters.project} key={`r${filters.project}`} aria-label="project">
            <option value="">every project</option>
            {projects.map((p) => <option key={p.name} value={p.name}>{p.displayName || p.name}</option>)}
          </select>
        ) : null}
        <button type="submit">Filter</button>
      </form>
      <ErrorBox error={error} />
      {jobs === null ? <p className="muted">Loading…</p> : (
        <table className="jobs" data-testid="jobs-table">
          <thead>
            <tr><th>Job</th><th>State</th><th>Pipeline</th><th>Owner</th><th>Project</th><th>Labels</th><th>Created</th><th>Duration</th></tr>
          </thead>
          <tbody>
            {jobs.map((job) => {
              const id = job.name.replace(/^jobs\//, "");
              return (
                <tr key={job.name} data-job={id}>
                  <td><a href={href(`/jobs/${id}`)}>{id}</a></td>
                  <td><StateBadge state={Job_State[job.state]} />{job.reason ? <span className="muted"> {job.reason}</span> : null}</td>
                  <td>{job.pipeline}</td>
                  <td>{job.owner}</td>
                  <td>{job.project}</td>
                  <td>{Object.entries(job.labels).map(([k, v]) => <code key={k} className="label">{k}={v}</code>)}</td>
                  <td>{time(job.createTime)}</td>
                  <td>{duration(job.startTime, job.endTime)}</td>
                </tr>
              );
            })}
            {jobs.length === 0 ? <tr><td colSpan={8} className="muted">No jobs match.</td></tr> : null}
          </tbody>
        </table>
      )}
      <div className="pager">
        <button type="button" disabled={!after} onClick={() => {
          const previous = history.current.pop();
          navigate("/jobs", query(filters, previous || undefined));
        }}>← Newer</button>
        <button type="button" disabled={!next} onClick={() => {
          history.current.push(after);
          navigate("/jobs", query(filters, next));
        }}>Older →</button>
      </div>
    </div>
  );
}
