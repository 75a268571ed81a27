package odin.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.ArrayList;
import java.util.List;
import odin.scheduler.v1.Scheduler.CreateJobRequest;
import odin.scheduler.v1.Scheduler.InlinePipeline;
import odin.scheduler.v1.Scheduler.Job;
import odin.scheduler.v1.Scheduler.ListJobsRequest;
import org.junit.jupiter.api.Test;

/**
 * Runs against a real suite: ODIN_GATEWAY, ODIN_USERNAME, ODIN_PASSWORD (tests/clients/test_java_client.py sets
 * them and checks in the surefire report that this test ran and passed).
 */
class LiveSuiteTest {
  private static final String PIPELINE = String.join("\n",
      "name: java-library",
      "tasks:",
      "  - name: hello",
      "    image: busybox",
      "    command: sh",
      "    args: [\"-c\", \"echo one; echo two from the java library\"]",
      "");

  @Test
  void aJobRunsToTheEndThroughTheLibrary() throws Exception {
    String gateway = System.getenv("ODIN_GATEWAY");
    assumeTrue(gateway != null && !gateway.isEmpty(), "set ODIN_GATEWAY to run against a suite");
    try (OdinClient odin = OdinClient.connect(gateway)) {
      odin.login(System.getenv("ODIN_USERNAME"), System.getenv("ODIN_PASSWORD"));
      String first = odin.accessToken();
      odin.scheduler().listJobs(ListJobsRequest.newBuilder().setPageSize(1).build());

      String job = odin.scheduler().createJob(CreateJobRequest.newBuilder()
          .setRequestId("java-library-" + System.nanoTime())
          .setInline(InlinePipeline.newBuilder().setMainYml(PIPELINE)).build()).getJob().getName();
      List<Long> seqs = new ArrayList<>();
      Job.State state = odin.watchJob(job, 0, event -> seqs.add(event.getSeq()));
      assertEquals(Job.State.STATE_SUCCEEDED, state);
      for (int i = 1; i < seqs.size(); i++) {
        assertTrue(seqs.get(i) > seqs.get(i - 1), "events in order: " + seqs);
      }
      StringBuilder log = new StringBuilder();
      odin.taskLogs(job + "/tasks/hello", 0, true, log::append);
      assertTrue(log.toString().contains("two from the java library"), log.toString());
      assertNotEquals("", first);
    }
  }
}
