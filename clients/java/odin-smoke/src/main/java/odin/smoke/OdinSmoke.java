package odin.smoke;

import io.grpc.Channel;
import io.grpc.ClientInterceptors;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.MetadataUtils;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import odin.auth.v1.Auth.GetJwksRequest;
import odin.auth.v1.Auth.GetJwksResponse;
import odin.client.OdinClient;
import odin.scheduler.v1.Scheduler.CreateJobRequest;
import odin.scheduler.v1.Scheduler.InlinePipeline;
import odin.scheduler.v1.Scheduler.Job;
import odin.scheduler.v1.Scheduler.ListJobsRequest;
import odin.scheduler.v1.Scheduler.ListTasksRequest;
import odin.scheduler.v1.Scheduler.Task;

/**
 * Drives Odin through its gateway with the Java client library (odin-api's OdinClient): health of each
 * service, login (or ODIN_TOKEN), the JWKS, then an inline pipeline submitted, watched to its end (the
 * watch resumes by itself after a dropped stream) and its task logs printed. Each step prints one JSON
 * line; a step the server does not implement yet prints status UNIMPLEMENTED and the run goes on; any
 * other failure exits 1.
 *
 * <p>Environment: ODIN_GATEWAY (host:port, required), ODIN_USERNAME and ODIN_PASSWORD, or ODIN_TOKEN.
 */
public final class OdinSmoke {
  private static final String PIPELINE = String.join("\n",
      "name: java-smoke",
      "tasks:",
      "  - name: hello",
      "    image: busybox",
      "    command: echo",
      "    args: [\"hello from java\"]",
      "");
  private static final List<String> SERVICES = List.of("auth", "pipelines", "scheduler", "midgard");
  private static final Metadata.Key<String> ODIN_SERVICE =
      Metadata.Key.of("x-odin-service", Metadata.ASCII_STRING_MARSHALLER);

  private OdinSmoke() {}

  public static void main(String[] args) throws InterruptedException {
    String gateway = System.getenv("ODIN_GATEWAY");
    if (gateway == null || gateway.isEmpty()) {
      System.err.println("odin-java-smoke: set ODIN_GATEWAY to the gateway's host:port");
      System.exit(2);
    }
    try (OdinClient odin = OdinClient.connect(gateway)) {
      checkHealth(odin.channel());
      if (!login(odin)) {
        return;
      }
      try {
        GetJwksResponse jwks = odin.auth().getJwks(GetJwksRequest.getDefaultInstance());
        ok("jwks", Map.of("keys", jwks.getKeysCount()));
      } catch (StatusRuntimeException e) {
        failed("jwks", e);
      }
      runJob(odin);
    }
  }

  private static void checkHealth(Channel channel) {
    for (String name : SERVICES) {
      // Every service serves the same health path; the gateway picks one by this header.
      Metadata headers = new Metadata();
      headers.put(ODIN_SERVICE, name);
      HealthGrpc.HealthBlockingStub health = HealthGrpc.newBlockingStub(
          ClientInterceptors.intercept(channel, MetadataUtils.newAttachHeadersInterceptor(headers)));
      try {
        HealthCheckResponse reply = health.withDeadlineAfter(120, TimeUnit.SECONDS)
            .check(HealthCheckRequest.getDefaultInstance());
        ok("health", Map.of("service", name, "serving", reply.getStatus().name()));
      } catch (StatusRuntimeException e) {
        failed("health", e);
      }
    }
  }

  private static boolean login(OdinClient odin) {
    String token = System.getenv("ODIN_TOKEN");
    if (token != null && !token.isEmpty()) {
      odin.useToken(token);
      ok("login", Map.of("source", "ODIN_TOKEN"));
      return true;
    }
    try {
      odin.login(env("ODIN_USERNAME"), env("ODIN_PASSWORD"));
      ok("login", Map.of("user", "users/" + env("ODIN_USERNAME")));
      return true;
    } catch (StatusRuntimeException e) {
      failed("login", e);
      return false;
    }
  }

  private static void runJob(OdinClient odin) {
    try {
      int jobs = odin.scheduler().listJobs(ListJobsRequest.newBuilder().setPageSize(5).build()).getJobsCount();
      ok("list_jobs", Map.of("jobs", jobs));
    } catch (StatusRuntimeException e) {
      failed("list_jobs", e);
    }
    String job;
    try {
      job = odin.scheduler().createJob(CreateJobRequest.newBuilder()
          .setRequestId("java-smoke-" + System.nanoTime())
          .setInline(InlinePipeline.newBuilder().setMainYml(PIPELINE))
          .build()).getJob().getName();
      ok("create_job", Map.of("job", job));
    } catch (StatusRuntimeException e) {
      failed("create_job", e);
      return;
    }
    Job.State state;
    try {
      state = odin.watchJob(job, 0, event -> ok("event", Map.of("seq", event.getSeq(), "type",
          event.getType().name(), "task", event.getTask(), "job_state", event.getJobState().name(),
          "task_state", event.getTaskState().name())));
    } catch (StatusRuntimeException e) {
      failed("watch_job", e);
      return;
    }
    ok("watch_job", Map.of("job", job, "state", state.name()));
    printLogs(odin, job);
  }

  private static void printLogs(OdinClient odin, String job) {
    try {
      for (Task task : odin.scheduler().listTasks(ListTasksRequest.newBuilder().setParent(job).build())
          .getTasksList()) {
        StringBuilder text = new StringBuilder();
        odin.taskLogs(task.getName(), 0, false, text::append);
        ok("logs", Map.of("task", task.getName(), "state", task.getState().name(), "text", text.toString()));
      }
    } catch (StatusRuntimeException e) {
      failed("logs", e);
    }
  }

  private static String env(String name) {
    String value = System.getenv(name);
    return value == null ? "" : value;
  }

  private static void ok(String step, Map<String, Object> fields) {
    Map<String, Object> line = new LinkedHashMap<>();
    line.put("step", step);
    line.put("status", "OK");
    line.putAll(fields);
    System.out.println(json(line));
  }

  /** Prints the failure; UNIMPLEMENTED lets the run go on, anything else ends it with exit code 1. */
  private static void failed(String step, StatusRuntimeException e) {
    Status status = e.getStatus();
    Map<String, Object> line = new LinkedHashMap<>();
    line.put("step", step);
    line.put("status", status.getCode().name());
    line.put("message", status.getDescription() == null ? "" : status.getDescription());
    System.out.println(json(line));
    if (status.getCode() != Status.Code.UNIMPLEMENTED) {
      System.exit(1);
    }
  }

  private static String json(Map<String, Object> fields) {
    StringBuilder out = new StringBuilder("{");
    for (Map.Entry<String, Object> field : fields.entrySet()) {
      if (out.length() > 1) {
        out.append(',');
      }
      out.append(quote(field.getKey())).append(':');
      Object value = field.getValue();
      out.append(value instanceof Number ? value.toString() : quote(String.valueOf(value)));
    }
    return out.append('}').toString();
  }

  private static String quote(String text) {
    StringBuilder out = new StringBuilder("\"");
    for (char c : text.toCharArray()) {
      switch (c) {
        case '"' -> out.append("\\\"");
        case '\\' -> out.append("\\\\");
        case '\n' -> out.append("\\n");
        case '\r' -> out.append("\\r");
        case '\t' -> out.append("\\t");
        default -> out.append(c < 0x20 ? String.format("\\u%04x", (int) c) : String.valueOf(c));
      }
    }
    return out.append('"').toString();
  }
}
