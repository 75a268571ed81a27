import { lazy, StrictMode, Suspense, useEffect, useSyncExternalStore, type ReactNode } from "react";
import { createRoot } from "react-dom/client";
import { JobsPage } from "./pages/Jobs";
import { LoginPage } from "./pages/Login";
import { href, navigate, useRoute, type Route } from "./router";
import { session } from "./session";
import "./style.css";

// The jobs page (the landing page) is in the main bundle; the others, with their libraries (dagre,
// the virtualizer, diff), load when first opened.
const JobPage = lazy(() => import("./pages/Job").then((m) => ({ default: m.JobPage })));
const LogsPage = lazy(() => import("./pages/Logs").then((m) => ({ default: m.LogsPage })));
const NewJobPage = lazy(() => import("./pages/NewJob").then((m) => ({ default: m.NewJobPage })));
const NodesPage = lazy(() => import("./pages/Nodes").then((m) => ({ default: m.NodesPage })));
const PipelinesPage = lazy(() => import("./pages/Pipelines").then((m) => ({ default: m.PipelinesPage })));

function useUser(): string | null {
  return useSyncExternalStore((cb) => session.subscribe(cb), () => session.user);
}

/** `#/pipelines/hello` is short for `#/pipelines/pipelines/hello` (the resource name). */
function pipelineName(path: string): string {
  return !path || path.startsWith("pipelines/") || path.startsWith("projects/") ? path : `pipelines/${path}`;
}

function page(route: Route): ReactNode {
  const [section, id, sub, task, leaf] = route.path;
  switch (section) {
    case "jobs":
      if (id && sub === "tasks" && task && leaf === "logs") return <LogsPage key={`${id}/${task}`} job={id} task={task} />;
      if (id) return <JobPage key={id} id={id} />;
      return <JobsPage />;
    case "new":
      return <NewJobPage />;
    case "pipelines":
      return <PipelinesPage name={pipelineName(route.path.slice(1).join("/"))} />;
    case "nodes":
      return <NodesPage />;
    default:
      return <div className="page"><h2>Not found</h2><p>No page at {route.raw}.</p></div>;
  }
}

function App(): ReactNode {
  const route = useRoute();
  const user = useUser();
  const onLogin = route.path[0] === "login";
  useEffect(() => {
    // Logged out (or the API refused the token): to login, and back here afterwards.
    if (!user && !onLogin) navigate("/login", { next: route.raw }, true);
  }, [user, onLogin, route.raw]);
  if (onLogin) return <LoginPage next={route.query.get("next") ?? "/jobs"} />;
  if (!user) return null;
  const section = route.path[0] ?? "jobs";
  return (
    <>
      <header className="top">
        <a className="brand" href={href("/jobs")}>Odin</a>
        <nav>
          {[["jobs", "Jobs"], ["pipelines", "Pipelines"], ["new", "New job"], ["nodes", "Nodes & GPUs"]].map(([to, label]) => (
            <a key={to} href={href(`/${to}`)} className={section === to ? "active" : ""}>{label}</a>
          ))}
        </nav>
        <span className="who" data-testid="user">{user}</span>
        <button type="button" onClick={() => void session.logout()}>Log out</button>
      </header>
      <main><Suspense fallback={<p className="muted">Loading…</p>}>{page(route)}</Suspense></main>
    </>
  );
}

const root = document.getElementById("root");
if (root) createRoot(root).render(<StrictMode><App /></StrictMode>);
