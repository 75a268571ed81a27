package odin.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Timestamp;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.StreamObserver;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import odin.auth.v1.Auth.TokenPair;
import odin.scheduler.v1.Scheduler.Job;
import odin.scheduler.v1.Scheduler.JobEvent;
import odin.scheduler.v1.Scheduler.StreamTaskLogsRequest;
import odin.scheduler.v1.Scheduler.StreamTaskLogsResponse;
import odin.scheduler.v1.Scheduler.WatchJobRequest;
import odin.scheduler.v1.Scheduler.WatchJobResponse;
import odin.scheduler.v1.SchedulerServiceGrpc;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class OdinClientTest {
  /** Drops every stream after two messages, as a restarting server would. */
  static final class FlakyScheduler extends SchedulerServiceGrpc.SchedulerServiceImplBase {
    final List<Long> opened = new ArrayList<>();
    final List<Long> offsets = new ArrayList<>();
    final String log = "hello from a long log\n";

    @Override
    public void watchJob(WatchJobRequest request, StreamObserver<WatchJobResponse> out) {
      opened.add(request.getAfterSeq());
      int sent = 0;
      for (long seq = request.getAfterSeq() + 1; seq <= 5; seq++) {
        if (sent == 2) {
          out.onError(Status.UNAVAILABLE.withDescription("going away").asRuntimeException());
          return;
        }
        JobEvent.Builder event = JobEvent.newBuilder().setSeq(seq).setJob("jobs/j");
        if (seq == 5) {
          event.setJobState(Job.State.STATE_SUCCEEDED);
        }
        out.onNext(WatchJobResponse.newBuilder().setEvent(event).build());
        sent++;
      }
      out.onCompleted();
    }

    @Override
    public void streamTaskLogs(StreamTaskLogsRequest request, StreamObserver<StreamTaskLogsResponse> out) {
      offsets.add(request.getOffset());
      int at = (int) request.getOffset();
      for (int i = 0; i < 2 && at < log.length(); i++) {
        int end = Math.min(at + 3, log.length());
        out.onNext(StreamTaskLogsResponse.newBuilder().setData(log.substring(at, end)).setOffset(at).setAttempt(2)
            .build());
        at = end;
      }
      if (at < log.length()) {
        out.onError(Status.UNAVAILABLE.withDescription("going away").asRuntimeException());
      } else {
        out.onCompleted();
      }
    }
  }

  private Server server;
  private ManagedChannel channel;

  private OdinClient serve(SchedulerServiceGrpc.SchedulerServiceImplBase impl) throws Exception {
    String name = InProcessServerBuilder.generateName();
    server = InProcessServerBuilder.forName(name).directExecutor().addService(impl).build().start();
    channel = InProcessChannelBuilder.forName(name).directExecutor().build();
    return OdinClient.wrap(channel).withBackoff(Duration.ofMillis(1), Duration.ofMillis(1));
  }

  @AfterEach
  void stop() {
    if (channel != null) {
      channel.shutdownNow();
    }
    if (server != null) {
      server.shutdownNow();
    }
  }

  @Test
  void watchJobResumesAfterADroppedStreamWithoutGapsOrRepeats() throws Exception {
    FlakyScheduler fake = new FlakyScheduler();
    List<Long> seen = new ArrayList<>();
    Job.State state = serve(fake).watchJob("jobs/j", 0, event -> seen.add(event.getSeq()));
    assertEquals(Job.State.STATE_SUCCEEDED, state);
    assertEquals(List.of(1L, 2L, 3L, 4L, 5L), seen);
    assertEquals(List.of(0L, 2L, 4L), fake.opened);
  }

  @Test
  void taskLogsResumeAtTheLastOffset() throws Exception {
    FlakyScheduler fake = new FlakyScheduler();
    StringBuilder text = new StringBuilder();
    serve(fake).taskLogs("jobs/j/tasks/t", 0, false, text::append);
    assertEquals(fake.log, text.toString());
    assertEquals(0L, fake.offsets.get(0));
    assertEquals(6L, fake.offsets.get(1));
  }

  @Test
  void aPermanentErrorIsThrownNotRetried() throws Exception {
    OdinClient client = serve(new SchedulerServiceGrpc.SchedulerServiceImplBase() {});
    StatusRuntimeException error = assertThrows(StatusRuntimeException.class,
        () -> client.watchJob("jobs/j", 0, event -> {}));
    assertEquals(Status.Code.UNIMPLEMENTED, error.getStatus().getCode());
  }

  @Test
  void theAccessTokenIsRefreshedBeforeItExpires() {
    Instant start = Instant.ofEpochSecond(1_000_000);
    Instant[] now = {start};
    Clock clock = new Clock() {
      @Override
      public ZoneOffset getZone() {
        return ZoneOffset.UTC;
      }

      @Override
      public Clock withZone(java.time.ZoneId zone) {
        return this;
      }

      @Override
      public Instant instant() {
        return now[0];
      }
    };
    AtomicInteger refreshed = new AtomicInteger();
    OdinClient.Tokens tokens = new OdinClient.Tokens(clock, renew -> {
      refreshed.incrementAndGet();
      assertEquals("r1", renew);
      return pair("a2", "r2", start.plusSeconds(900));
    });
    tokens.set(pair("a1", "r1", start.plusSeconds(300)));
    assertEquals("a1", tokens.bearer());
    assertEquals(0, refreshed.get());
    now[0] = start.plusSeconds(270); // within a minute of expiry
    assertEquals("a2", tokens.bearer());
    assertEquals(1, refreshed.get());
    assertTrue(OdinClient.OPEN_METHODS.contains("odin.auth.v1.AuthService/RefreshToken"));
    assertNotEquals("a1", tokens.bearer());
  }

  private static TokenPair pair(String access, String refresh, Instant expires) {
    return TokenPair.newBuilder().setAccessToken(access).setRefreshToken(refresh)
        .setAccessTokenExpireTime(Timestamp.newBuilder().setSeconds(expires.getEpochSecond())).build();
  }
}
