// Command odin-go-smoke drives Odin through its gateway with the generated Go stubs: it checks
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
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "odin.local/clients/go/gen/odin/auth/v1"
	schedulerv1 "odin.local/clients/go/gen/odin/scheduler/v1"
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
	conn, err := grpc.NewClient(gateway, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "odin-go-smoke:", err)
		os.Exit(2)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	checkHealth(ctx, conn)
	auth := authv1.NewAuthServiceClient(conn)
	token := login(ctx, auth)
	jwks, err := auth.GetJwks(callCtx(ctx, ""), &authv1.GetJwksRequest{})
	outcome("jwks", err, report{"keys": len(jwks.GetKeys())})
	if token == "" {
		return
	}
	runJob(callCtx(ctx, token), schedulerv1.NewSchedulerServiceClient(conn))
}

func callCtx(ctx context.Context, token string) context.Context {
	if token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

func checkHealth(ctx context.Context, conn *grpc.ClientConn) {
	health := healthpb.NewHealthClient(conn)
	for _, name := range services {
		// Every service serves the same health path; the gateway picks one by this header.
		hctx := metadata.AppendToOutgoingContext(ctx, "x-odin-service", name)
		reply, err := health.Check(hctx, &healthpb.HealthCheckRequest{})
		outcome("health", err, report{"service": name, "serving": reply.GetStatus().String()})
	}
}

func login(ctx context.Context, auth authv1.AuthServiceClient) string {
	if token := os.Getenv("ODIN_TOKEN"); token != "" {
		emit(report{"step": "login", "status": "OK", "source": "ODIN_TOKEN"})
		return token
	}
	reply, err := auth.Login(ctx, &authv1.LoginRequest{
		Username: os.Getenv("ODIN_USERNAME"), Password: os.Getenv("ODIN_PASSWORD"),
	})
	if !outcome("login", err, report{"user": reply.GetUser().GetName()}) {
		return ""
	}
	return reply.GetTokens().GetAccessToken()
}

func runJob(ctx context.Context, scheduler schedulerv1.SchedulerServiceClient) {
	list, err := scheduler.ListJobs(ctx, &schedulerv1.ListJobsRequest{PageSize: 5})
	outcome("list_jobs", err, report{"jobs": len(list.GetJobs())})
	created, err := scheduler.CreateJob(ctx, &schedulerv1.CreateJobRequest{
		RequestId: fmt.Sprintf("go-smoke-%d", time.Now().UnixNano()),
		Source:    &schedulerv1.CreateJobRequest_Inline{Inline: &schedulerv1.InlinePipeline{MainYml: pipeline}},
	})
	if !outcome("create_job", err, report{"job": created.GetJob().GetName()}) {
		return
	}
	job := created.GetJob().GetName()
	final := watch(ctx, scheduler, job)
	outcome("watch_job", nil, report{"job": job, "state": final.String()})
	printLogs(ctx, scheduler, job)
}

// watch streams the job's events until the stream ends (after the job's last event).
func watch(ctx context.Context, scheduler schedulerv1.SchedulerServiceClient, job string) schedulerv1.Job_State {
	stream, err := scheduler.WatchJob(ctx, &schedulerv1.WatchJobRequest{Name: job})
	if err != nil {
		outcome("watch_job", err, nil)
	}
	state := schedulerv1.Job_STATE_UNSPECIFIED
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return state
		}
		if err != nil {
			outcome("watch_job", err, nil)
		}
		if event := msg.GetEvent(); event != nil {
			if event.GetJobState() != schedulerv1.Job_STATE_UNSPECIFIED {
				state = event.GetJobState()
			}
			emit(report{"step": "event", "seq": event.GetSeq(), "type": event.GetType().String(),
				"task": event.GetTask(), "job_state": event.GetJobState().String(),
				"task_state": event.GetTaskState().String()})
		}
	}
}

func printLogs(ctx context.Context, scheduler schedulerv1.SchedulerServiceClient, job string) {
	tasks, err := scheduler.ListTasks(ctx, &schedulerv1.ListTasksRequest{Parent: job})
	if !outcome("list_tasks", err, report{"tasks": len(tasks.GetTasks())}) {
		return
	}
	for _, task := range tasks.GetTasks() {
		stream, err := scheduler.StreamTaskLogs(ctx, &schedulerv1.StreamTaskLogsRequest{Name: task.GetName()})
		if err != nil {
			outcome("logs", err, report{"task": task.GetName()})
		}
		text := ""
		for {
			chunk, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				outcome("logs", err, nil)
			}
			text += chunk.GetData()
		}
		emit(report{"step": "logs", "status": "OK", "task": task.GetName(), "state": task.GetState().String(),
			"text": text})
	}
}
