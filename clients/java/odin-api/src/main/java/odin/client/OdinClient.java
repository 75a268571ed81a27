package odin.client;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ClientInterceptors;
import io.grpc.ForwardingClientCall;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Iterator;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import odin.auth.v1.Auth.LoginRequest;
import odin.auth.v1.Auth.RefreshTokenRequest;
import odin.auth.v1.Auth.TokenPair;
import odin.auth.v1.AuditServiceGrpc;
import odin.auth.v1.AuthServiceGrpc;
import odin.midgard.v1.MidgardServiceGrpc;
import odin.pipelines.v1.PipelinesServiceGrpc;
import odin.scheduler.v1.Scheduler.Job;
import odin.scheduler.v1.Scheduler.JobEvent;
import odin.scheduler.v1.Scheduler.StreamTaskLogsRequest;
import odin.scheduler.v1.Scheduler.StreamTaskLogsResponse;
import odin.scheduler.v1.Scheduler.WatchJobRequest;
import odin.scheduler.v1.Scheduler.WatchJobResponse;
import odin.scheduler.v1.SchedulerServiceGrpc;

/**
 * A connection to Odin's gateway with a blocking stub per service, login with automatic access-token
 * refresh, and job watches and log streams that resume after a dropped connection.
 *
 * <pre>{@code
 * try (OdinClient odin = OdinClient.connect("127.0.0.1:8080")) {
 *   odin.login("ada", password);
 *   String job = odin.scheduler().createJob(request).getJob().getName();
 *   Job.State state = odin.watchJob(job, 0, event -> System.out.println(event.getSeq()));
 *   odin.taskLogs(job + "/tasks/train", 0, true, System.out::print);
 * }
 * }</pre>
 */
public final class OdinClient implements AutoCloseable {
  /** RPCs that need no token: a stale one must not get in their way. */
  static final Set<String> OPEN_METHODS = Set.of(
      "odin.auth.v1.AuthService/Login",
      "odin.auth.v1.AuthService/RefreshToken",
      "odin.auth.v1.AuthService/ExchangeApiToken",
      "odin.auth.v1.AuthService/GetJwks");
  /** How long before its expiry an access token is replaced. */
  static final Duration REFRESH_MARGIN = Duration.ofMinutes(1);
  private static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
  /** Reopening a stream that keeps failing at once, without progress, stops after this many tries. */
  static final int MAX_QUICK_FAILURES = 8;

  private final ManagedChannel owned;
  private final Channel channel;
  private final Tokens tokens;
  private Duration backoffInitial = Duration.ofMillis(200);
  private Duration backoffMax = Duration.ofSeconds(5);
  private Duration deadline = Duration.ofMinutes(2);

  private OdinClient(ManagedChannel owned, Channel raw, Clock clock) {
    this.owned = owned;
    this.tokens = new Tokens(clock, this::refresh);
    this.channel = ClientInterceptors.intercept(raw, new BearerInterceptor(tokens));
  }

  /** Connects to {@code address} (host:port of the gateway) in plain text. */
  public static OdinClient connect(String address) {
    ManagedChannel channel = Grpc.newChannelBuilder(address, InsecureChannelCredentials.create()).build();
    return new OdinClient(channel, channel, Clock.systemUTC());
  }

  /** Wraps a channel the caller owns (and closes), e.g. with TLS credentials. */
  public static OdinClient wrap(Channel channel) {
    return new OdinClient(null, channel, Clock.systemUTC());
  }

  static OdinClient wrap(Channel channel, Clock clock) {
    return new OdinClient(null, channel, clock);
  }

  /** The channel with the caller's token on every call, for stubs this class does not make. */
  public Channel channel() {
    return channel;
  }

  /** Waits between reopened streams: doubling from {@code initial} up to {@code max}. */
  public OdinClient withBackoff(Duration initial, Duration max) {
    this.backoffInitial = initial;
    this.backoffMax = max;
    return this;
  }

  /** The deadline of each unary call and of each stream the helpers open (default 2 minutes). */
  public OdinClient withDeadline(Duration value) {
    this.deadline = value;
    return this;
  }

  public AuthServiceGrpc.AuthServiceBlockingStub auth() {
    return AuthServiceGrpc.newBlockingStub(channel).withDeadlineAfter(deadline.toMillis(), TimeUnit.MILLISECONDS);
  }

  public AuditServiceGrpc.AuditServiceBlockingStub audit() {
    return AuditServiceGrpc.newBlockingStub(channel).withDeadlineAfter(deadline.toMillis(), TimeUnit.MILLISECONDS);
  }

  public SchedulerServiceGrpc.SchedulerServiceBlockingStub scheduler() {
    return SchedulerServiceGrpc.newBlockingStub(channel)
        .withDeadlineAfter(deadline.toMillis(), TimeUnit.MILLISECONDS);
  }

  public PipelinesServiceGrpc.PipelinesServiceBlockingStub pipelines() {
    return PipelinesServiceGrpc.newBlockingStub(channel)
        .withDeadlineAfter(deadline.toMillis(), TimeUnit.MILLISECONDS);
  }

  public MidgardServiceGrpc.MidgardServiceBlockingStub midgard() {
    return MidgardServiceGrpc.newBlockingStub(channel).withDeadlineAfter(deadline.toMillis(), TimeUnit.MILLISECONDS);
  }

  /** Logs in; later calls refresh the access token through the refresh token by themselves. */
  public void login(String username, String password) {
    tokens.set(auth().login(LoginRequest.newBuilder().setUsername(username).setPassword(password).build())
        .getTokens());
  }

  /** Sends a fixed bearer token (an access JWT or an {@code odin_…} API token) on every call. */
  public void useToken(String token) {
    tokens.setFixed(token);
  }

  /** The bearer the next call sends (refreshed first when it is about to expire). */
  public String accessToken() {
    return tokens.bearer();
  }

  private TokenPair refresh(String refreshToken) {
    return auth().refreshToken(RefreshTokenRequest.newBuilder().setRefreshToken(refreshToken).build()).getTokens();
  }

  /**
   * Calls {@code handle} for every event of job {@code name} after {@code afterSeq} until the job
   * ends, and returns its final state. A dropped stream is reopened from the last seq seen, so no
   * event is missed or repeated.
   */
  public Job.State watchJob(String name, long afterSeq, Consumer<JobEvent> handle) {
    Job.State state = Job.State.STATE_UNSPECIFIED;
    long cursor = afterSeq;
    Duration wait = backoffInitial;
    int failures = 0;
    while (true) {
      try {
        Iterator<WatchJobResponse> stream =
            scheduler().watchJob(WatchJobRequest.newBuilder().setName(name).setAfterSeq(cursor).build());
        while (stream.hasNext()) {
          WatchJobResponse message = stream.next();
          if (!message.hasEvent() || message.getEvent().getSeq() <= cursor) {
            continue; // a heartbeat, or an event seen before the reconnect
          }
          JobEvent event = message.getEvent();
          cursor = event.getSeq();
          failures = 0;
          wait = backoffInitial;
          if (event.getJobState() != Job.State.STATE_UNSPECIFIED) {
            state = event.getJobState();
          }
          handle.accept(event);
        }
        return state; // the server ends the stream after the job's last event
      } catch (StatusRuntimeException e) {
        if (!isTransient(e) || ++failures > MAX_QUICK_FAILURES) {
          throw e;
        }
        wait = pause(wait);
      }
    }
  }

  /**
   * Passes the log of task {@code name} ({@code jobs/{job}/tasks/{task}}; attempt 0 is the current
   * one) to {@code sink}, following it while the task runs when {@code follow} is set. A dropped
   * stream is reopened at the last offset received.
   */
  public void taskLogs(String name, int attempt, boolean follow, Consumer<String> sink) {
    long offset = 0;
    int current = attempt;
    Duration wait = backoffInitial;
    int failures = 0;
    while (true) {
      try {
        Iterator<StreamTaskLogsResponse> stream = scheduler().streamTaskLogs(StreamTaskLogsRequest.newBuilder()
            .setName(name).setAttempt(current).setFollow(follow).setOffset(offset).build());
        while (stream.hasNext()) {
          StreamTaskLogsResponse chunk = stream.next();
          if (current == 0 && chunk.getAttempt() != 0) {
            current = chunk.getAttempt(); // resume the attempt being read, not a newer one
          }
          sink.accept(chunk.getData());
          offset = chunk.getOffset() + chunk.getDataBytes().size();
          failures = 0;
          wait = backoffInitial;
        }
        return;
      } catch (StatusRuntimeException e) {
        if (!isTransient(e) || ++failures > MAX_QUICK_FAILURES) {
          throw e;
        }
        wait = pause(wait);
      }
    }
  }

  /** The server or the gateway went away: a restart drops streams as UNAVAILABLE, or INTERNAL through a proxy. */
  static boolean isTransient(StatusRuntimeException e) {
    Status.Code code = e.getStatus().getCode();
    return code == Status.Code.UNAVAILABLE || code == Status.Code.INTERNAL
        || code == Status.Code.RESOURCE_EXHAUSTED || code == Status.Code.ABORTED;
  }

  private Duration pause(Duration wait) {
    try {
      Thread.sleep(wait.toMillis());
    } catch (InterruptedException interrupted) {
      Thread.currentThread().interrupt();
      throw Status.CANCELLED.withDescription("interrupted").asRuntimeException();
    }
    Duration doubled = wait.multipliedBy(2);
    return doubled.compareTo(backoffMax) > 0 ? backoffMax : doubled;
  }

  @Override
  public void close() throws InterruptedException {
    if (owned != null) {
      owned.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  /** The session: the access token, when it expires, and the refresh token that renews it. */
  static final class Tokens {
    interface Refresh {
      TokenPair refresh(String refreshToken);
    }

    private final Clock clock;
    private final Refresh refresh;
    private String access = "";
    private String renew = "";
    private Instant expires = Instant.EPOCH;

    Tokens(Clock clock, Refresh refresh) {
      this.clock = clock;
      this.refresh = refresh;
    }

    synchronized void set(TokenPair pair) {
      access = pair.getAccessToken();
      renew = pair.getRefreshToken();
      expires = Instant.ofEpochSecond(pair.getAccessTokenExpireTime().getSeconds(),
          pair.getAccessTokenExpireTime().getNanos());
    }

    synchronized void setFixed(String token) {
      access = token;
      renew = "";
      expires = Instant.EPOCH;
    }

    synchronized String bearer() {
      if (!renew.isEmpty() && !clock.instant().plus(REFRESH_MARGIN).isBefore(expires)) {
        set(refresh.refresh(renew));
      }
      return access;
    }
  }

  /** Puts {@code authorization: Bearer …} on every call that needs a token. */
  static final class BearerInterceptor implements ClientInterceptor {
    private final Tokens tokens;

    BearerInterceptor(Tokens tokens) {
      this.tokens = tokens;
    }

    @Override
    public <Q, R> ClientCall<Q, R> interceptCall(MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
      boolean open = OPEN_METHODS.contains(method.getFullMethodName());
      return new ForwardingClientCall.SimpleForwardingClientCall<>(next.newCall(method, options)) {
        @Override
        public void start(Listener<R> listener, Metadata headers) {
          String token = open ? "" : tokens.bearer();
          if (!token.isEmpty()) {
            headers.put(AUTHORIZATION, "Bearer " + token);
          }
          super.start(listener, headers);
        }
      };
    }
  }
}
