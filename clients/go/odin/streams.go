package odin

import (
	"context"
	"errors"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	schedulerv1 "odin.local/clients/go/gen/odin/scheduler/v1"
)

// Backoff between reconnects: doubling from Initial up to Max.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

// DefaultBackoff is what WatchJob and TaskLogs use.
var DefaultBackoff = Backoff{Initial: 200 * time.Millisecond, Max: 5 * time.Second}

// transient says whether a broken stream is worth reopening: the server or the gateway went away
// (a restart drops streams as UNAVAILABLE, or as INTERNAL "RST_STREAM" through a proxy).
func transient(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.Aborted:
		return true
	case codes.Internal:
		return true // the stream reset by a restarting upstream; a real INTERNAL repeats and is returned
	}
	return false
}

func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// maxQuickFailures bounds reopening a stream that fails again at once without progress.
const maxQuickFailures = 8

// WatchJob calls handle for every event of job `name` after `afterSeq` until the job ends, and
// returns its final state. A dropped stream is reopened from the last seq seen, so no event is
// missed or repeated. handle's error stops the watch and is returned.
func (c *Client) WatchJob(ctx context.Context, name string, afterSeq int64,
	handle func(*schedulerv1.JobEvent) error) (schedulerv1.Job_State, error) {
	state := schedulerv1.Job_STATE_UNSPECIFIED
	wait, failures := DefaultBackoff.Initial, 0
	for {
		stream, err := c.Scheduler.WatchJob(ctx, &schedulerv1.WatchJobRequest{Name: name, AfterSeq: afterSeq})
		for err == nil {
			var msg *schedulerv1.WatchJobResponse
			msg, err = stream.Recv()
			if err != nil {
				break
			}
			event := msg.GetEvent()
			if event == nil || event.GetSeq() <= afterSeq {
				continue // a heartbeat, or an event seen before the reconnect
			}
			afterSeq, failures, wait = event.GetSeq(), 0, DefaultBackoff.Initial
			if event.GetJobState() != schedulerv1.Job_STATE_UNSPECIFIED {
				state = event.GetJobState()
			}
			if herr := handle(event); herr != nil {
				return state, herr
			}
		}
		if errors.Is(err, io.EOF) {
			return state, nil // the server ends the stream after the job's last event
		}
		if failures++; !transient(err) || failures > maxQuickFailures {
			return state, err
		}
		if serr := sleep(ctx, wait); serr != nil {
			return state, serr
		}
		wait = min(wait*2, DefaultBackoff.Max)
	}
}

// TaskLogs copies the log of task `name` (`jobs/{job}/tasks/{task}`, attempt 0 = the current
// one) to w, following it while the task runs when follow is set. A dropped stream is reopened
// at the last offset received.
func (c *Client) TaskLogs(ctx context.Context, name string, attempt int32, follow bool, w io.Writer) error {
	var offset int64
	wait, failures := DefaultBackoff.Initial, 0
	for {
		stream, err := c.Scheduler.StreamTaskLogs(ctx, &schedulerv1.StreamTaskLogsRequest{
			Name: name, Attempt: attempt, Follow: follow, Offset: offset,
		})
		for err == nil {
			var chunk *schedulerv1.StreamTaskLogsResponse
			chunk, err = stream.Recv()
			if err != nil {
				break
			}
			if attempt == 0 && chunk.GetAttempt() != 0 {
				attempt = chunk.GetAttempt() // resume the attempt we were reading, not a newer one
			}
			if _, werr := io.WriteString(w, chunk.GetData()); werr != nil {
				return werr
			}
			offset, failures, wait = chunk.GetOffset()+int64(len(chunk.GetData())), 0, DefaultBackoff.Initial
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if failures++; !transient(err) || failures > maxQuickFailures {
			return err
		}
		if serr := sleep(ctx, wait); serr != nil {
			return serr
		}
		wait = min(wait*2, DefaultBackoff.Max)
	}
}
