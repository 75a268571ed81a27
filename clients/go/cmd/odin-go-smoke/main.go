// Command odin-go-smoke drives Odin through its gateway with the Go client library (package odin): it checks
// each service's health, logs in (or uses ODIN_TOKEN), reads the JWKS, submits an inline
// pipeline, streams the job to its end and prints the task logs.
//
// Every step prints one JSON line {"step": ..., "status": ..., ...}. A step whose RPC the server
// does not implement yet prints status UNIMPLEMENTED and the run goes on; any other failure
// exits 1.
//
// Environment: ODIN_GATEWAY (host:port, required), ODIN_USERNAME and ODIN_PASSWORD, or ODIN_TOKEN.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
	"unicode"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "odin.local/clients/go/gen/odin/auth/v1"
	schedulerv1 "odin.local/clients/go/gen/odin/scheduler/v1"
	"odin.local/clients/go/odin"
)

const pipeline = `name: go-smoke
tasks:
  - name: hello
    image: busybox
    command: echo
    args: ["hello from go"]
`

var services = []string{"auth", "pipelines", "scheduler", "midgard"}

type report map[string]any

func emit(r report) {
	line, _ := json.Marshal(r)
	fmt.Println(string(line))
}

// outcome prints the step and says whether the run may go on with its result.
func outcome(step string, err error, extra report) bool {
	r := report{"step": step, "status": "OK"}
	for k, v := range extra {
		r[k] = v
	}
	if err != nil {
		st := status.Convert(err)
		r["status"] = canonical(st.Code())
		r["message"] = st.Message()
		emit(r)
		if st.Code() == codes.Unimplemented {
			return false
		}
		os.Exit(1)
	}
	emit(r)
	return true
}

// canonical spells a code as the gRPC spec does (DEADLINE_EXCEEDED), like the other clients print it.
func canonical(code codes.Code) string {
	var out strings.Builder
	previous := ' '
	for _, r := range code.String() {
		if unicode.IsUpper(r) && unicode.IsLower(previous) {
			out.WriteByte('_')
		}
		out.WriteRune(unicode.ToUpper(r))
		previous = r
	}
	return out.String()
}

func main() {
	gateway := os.Getenv("ODIN_GATEWAY")
	if gateway == "" {
		fmt.Fprintln(os.Stderr, "odin-go-smoke: set ODIN_GATEWAY to the gateway's host:port")
		os.Exit(2)
	}
	client, err := odin.Dial(gateway)
	if err != nil {
		fmt.Fprintln(os.Stderr, "odin-go-smoke:", err)
		os.Exit(2)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	checkHealth(ctx, client)
	if !login(ctx, client) {
		return
	}
	jwks, err := client.Auth.GetJwks(ctx, &authv1.GetJwksRequest{})
	outcome("jwks", err, report{"keys": len(jwks.GetKeys())})
	runJob(ctx, client)
}

func checkHealth(ctx context.Context, client *odin.Client) {
	health := healthpb.NewHealthClient(client.Conn())
	for _, name := range services {
		// Every service serves the same health path; the gateway picks one by this header.
		hctx := metadata.AppendToOutgoingContext(ctx, "x-odin-service", name)
		reply, err := health.Check(hctx, &healthpb.HealthCheckRequest{})
		outcome("health", err, report{"service": name, "serving": reply.GetStatus().String()})
	}
}

func login(ctx context.Context, client *odin.Client) bool {
	if token := os.Getenv("ODIN_TOKEN"); token != "" {
		client.UseToken(token)
		emit(report{"step": "login", "status": "OK", "source": "ODIN_TOKEN"})
		return true
	}
	err := client.Login(ctx, os.Getenv("ODIN_USERNAME"), os.Getenv("ODIN_PASSWORD"))
	return outcome("login", err, report{"user": "users/" + os.Getenv("ODIN_USERNAME")})
}

func runJob(ctx context.Context, client *odin.Client) {
	list, err := client.Scheduler.ListJobs(ctx, &schedulerv1.ListJobsRequest{PageSize: 5})
	outcome("list_jobs", err, report{"jobs": len(list.GetJobs())})
	created, err := client.Scheduler.CreateJob(ctx, &schedulerv1.CreateJobRequest{
		RequestId: fmt.Sprintf("go-smoke-%d", time.Now().UnixNano()),
		Source:    &schedulerv1.CreateJobRequest_Inline{Inline: &schedulerv1.InlinePipeline{MainYml: pipeline}},
	})
	if !outcome("create_job", err, report{"job": created.GetJob().GetName()}) {
		return
	}
	job := created.GetJob().GetName()
	// WatchJob reconnects by itself from the last seq seen; it returns after the job's last event.
	final, err := client.WatchJob(ctx, job, 0, func(event *schedulerv1.JobEvent) error {
		emit(report{"step": "event", "seq": event.GetSeq(), "type": event.GetType().String(),
			"task": event.GetTask(), "job_state": event.GetJobState().String(),
			"task_state": event.GetTaskState().String()})
		return nil
	})
	outcome("watch_job", err, report{"job": job, "state": final.String()})
	printLogs(ctx, client, job)
}

func printLogs(ctx context.Context, client *odin.Client, job string) {
	tasks, err := client.Scheduler.ListTasks(ctx, &schedulerv1.ListTasksRequest{Parent: job})
	if !outcome("list_tasks", err, report{"tasks": len(tasks.GetTasks())}) {
		return
	}
	for _, task := range tasks.GetTasks() {
		var text strings.Builder
		err := client.TaskLogs(ctx, task.GetName(), 0, false, &text)
		if err != nil {
			outcome("logs", err, report{"task": task.GetName()})
		}
		emit(report{"step": "logs", "status": "OK", "task": task.GetName(), "state": task.GetState().String(),
			"text": text.String()})
	}
}
