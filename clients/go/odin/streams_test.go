package odin

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "odin.local/clients/go/gen/odin/auth/v1"
	schedulerv1 "odin.local/clients/go/gen/odin/scheduler/v1"
)

// flakyScheduler drops every stream after two messages, as a restarting server would.
type flakyScheduler struct {
	schedulerv1.UnimplementedSchedulerServiceServer
	events  []*schedulerv1.JobEvent
	log     string
	opened  []int64
	offsets []int64
}

func (f *flakyScheduler) WatchJob(req *schedulerv1.WatchJobRequest, stream schedulerv1.SchedulerService_WatchJobServer) error {
	f.opened = append(f.opened, req.GetAfterSeq())
	sent := 0
	for _, e := range f.events {
		if e.GetSeq() <= req.GetAfterSeq() {
			continue
		}
		if sent == 2 {
			return status.Error(codes.Unavailable, "going away")
		}
		if err := stream.Send(&schedulerv1.WatchJobResponse{Kind: &schedulerv1.WatchJobResponse_Event{Event: e}}); err != nil {
			return err
		}
		sent++
	}
	return nil
}

func (f *flakyScheduler) StreamTaskLogs(req *schedulerv1.StreamTaskLogsRequest, stream schedulerv1.SchedulerService_StreamTaskLogsServer) error {
	f.offsets = append(f.offsets, req.GetOffset())
	rest := f.log[req.GetOffset():]
	for i := 0; i < 2 && len(rest) > 0; i++ {
		n := min(3, len(rest))
		chunk := &schedulerv1.StreamTaskLogsResponse{Data: rest[:n], Offset: int64(len(f.log) - len(rest)), Attempt: 2}
		if err := stream.Send(chunk); err != nil {
			return err
		}
		rest = rest[n:]
	}
	if len(rest) > 0 {
		return status.Error(codes.Unavailable, "going away")
	}
	return nil
}

func serve(t *testing.T, impl schedulerv1.SchedulerServiceServer) *Client {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer()
	schedulerv1.RegisterSchedulerServiceServer(server, impl)
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(server.Stop)
	client, err := Dial(listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func TestWatchJobResumesAfterADroppedStreamWithoutGapsOrRepeats(t *testing.T) {
	old := DefaultBackoff
	DefaultBackoff = Backoff{Initial: time.Millisecond, Max: time.Millisecond}
	t.Cleanup(func() { DefaultBackoff = old })
	fake := &flakyScheduler{}
	for seq := int64(1); seq <= 5; seq++ {
		fake.events = append(fake.events, &schedulerv1.JobEvent{Seq: seq, Job: "jobs/j"})
	}
	fake.events[4].JobState = schedulerv1.Job_STATE_SUCCEEDED
	client := serve(t, fake)
	var seen []int64
	state, err := client.WatchJob(context.Background(), "jobs/j", 0, func(e *schedulerv1.JobEvent) error {
		seen = append(seen, e.GetSeq())
		return nil
	})
	if err != nil || state != schedulerv1.Job_STATE_SUCCEEDED {
		t.Fatalf("state %v, err %v", state, err)
	}
	if want := []int64{1, 2, 3, 4, 5}; !equal(seen, want) {
		t.Fatalf("events %v, want %v", seen, want)
	}
	if want := []int64{0, 2, 4}; !equal(fake.opened, want) {
		t.Fatalf("reopened after %v, want %v", fake.opened, want)
	}
}

func TestTaskLogsResumeAtTheLastOffset(t *testing.T) {
	old := DefaultBackoff
	DefaultBackoff = Backoff{Initial: time.Millisecond, Max: time.Millisecond}
	t.Cleanup(func() { DefaultBackoff = old })
	fake := &flakyScheduler{log: "hello from a long log\n"}
	client := serve(t, fake)
	var out bytes.Buffer
	if err := client.TaskLogs(context.Background(), "jobs/j/tasks/t", 0, false, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != fake.log {
		t.Fatalf("log %q, want %q", out.String(), fake.log)
	}
	if fake.offsets[0] != 0 || fake.offsets[1] != 6 {
		t.Fatalf("offsets %v", fake.offsets)
	}
}

func TestAPermanentErrorIsReturnedNotRetried(t *testing.T) {
	client := serve(t, &schedulerv1.UnimplementedSchedulerServiceServer{})
	_, err := client.WatchJob(context.Background(), "jobs/j", 0, func(*schedulerv1.JobEvent) error { return nil })
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("err %v", err)
	}
}

func TestTheAccessTokenIsRefreshedBeforeItExpires(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	refreshed := 0
	tok := &tokens{now: func() time.Time { return now }, refresh: func(_ context.Context, renew string) (*authv1.TokenPair, error) {
		refreshed++
		if renew != "r1" {
			t.Fatalf("refreshed with %q", renew)
		}
		return &authv1.TokenPair{AccessToken: "a2", RefreshToken: "r2",
			AccessTokenExpireTime: timestamppb.New(now.Add(10 * time.Minute))}, nil
	}}
	tok.set(&authv1.TokenPair{AccessToken: "a1", RefreshToken: "r1",
		AccessTokenExpireTime: timestamppb.New(now.Add(5 * time.Minute))})
	if got, _ := tok.bearer(context.Background()); got != "a1" || refreshed != 0 {
		t.Fatalf("early: %q after %d refreshes", got, refreshed)
	}
	now = now.Add(4*time.Minute + 30*time.Second) // within a minute of expiry
	if got, _ := tok.bearer(context.Background()); got != "a2" || refreshed != 1 {
		t.Fatalf("late: %q after %d refreshes", got, refreshed)
	}
	ctx, err := tok.withBearer(context.Background(), "/odin.auth.v1.AuthService/Login")
	if err != nil || ctx != context.Background() {
		t.Fatal("an open method must go without a token")
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
