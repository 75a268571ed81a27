package odin

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	schedulerv1 "odin.local/clients/go/gen/odin/scheduler/v1"
)

// TestLiveSuite runs against a real suite: ODIN_GATEWAY, ODIN_USERNAME, ODIN_PASSWORD
// (tests/clients/test_go_client.py sets them and insists that this test ran and passed).
func TestLiveSuite(t *testing.T) {
	gateway := os.Getenv("ODIN_GATEWAY")
	if gateway == "" {
		t.Skip("set ODIN_GATEWAY, ODIN_USERNAME and ODIN_PASSWORD to run against a suite")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client, err := Dial(gateway)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.Login(ctx, os.Getenv("ODIN_USERNAME"), os.Getenv("ODIN_PASSWORD")); err != nil {
		t.Fatal(err)
	}

	// An access token near its expiry is replaced through the refresh token before the call.
	client.tokens.mu.Lock()
	first := client.tokens.access
	client.tokens.expires = time.Now()
	client.tokens.mu.Unlock()
	if _, err := client.Scheduler.ListJobs(ctx, &schedulerv1.ListJobsRequest{PageSize: 1}); err != nil {
		t.Fatal(err)
	}
	if second, _ := client.AccessToken(ctx); second == first || second == "" {
		t.Fatal("the access token was not refreshed")
	}

	pipeline := "name: go-library\ntasks:\n  - name: hello\n    image: busybox\n    command: sh\n" +
		"    args: [\"-c\", \"echo one; echo two from the go library\"]\n"
	created, err := client.Scheduler.CreateJob(ctx, &schedulerv1.CreateJobRequest{
		RequestId: fmt.Sprintf("go-library-%d", time.Now().UnixNano()),
		Source:    &schedulerv1.CreateJobRequest_Inline{Inline: &schedulerv1.InlinePipeline{MainYml: pipeline}},
	})
	if err != nil {
		t.Fatal(err)
	}
	job := created.GetJob().GetName()
	var seqs []int64
	state, err := client.WatchJob(ctx, job, 0, func(e *schedulerv1.JobEvent) error {
		seqs = append(seqs, e.GetSeq())
		return nil
	})
	if err != nil || state != schedulerv1.Job_STATE_SUCCEEDED {
		t.Fatalf("watch ended in %v: %v", state, err)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("events out of order: %v", seqs)
		}
	}
	var log bytes.Buffer
	if err := client.TaskLogs(ctx, job+"/tasks/hello", 0, true, &log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "two from the go library") {
		t.Fatalf("log %q", log.String())
	}
}
