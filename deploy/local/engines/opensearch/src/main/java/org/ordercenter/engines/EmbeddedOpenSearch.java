package org.ordercenter.engines;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.cluster.service.ClusterService;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * A single OpenSearch node in this JVM, for the tests: HTTP on loopback, no bootstrap checks.
 *
 * <p>Why embedded rather than the distribution: no OpenSearch server comes from a package
 * registry reachable here, and Maven Central carries the server jar and its modules. An
 * embedded node skips the bootstrap checks (among them the refusal to run as root, and CI runs
 * as root). The modules it needs are passed as classpath plugins: netty4 for HTTP and
 * analysis-common for the {@code cjk} analyzer.
 *
 * <p>Usage: {@code EmbeddedOpenSearch HOME_DIR HTTP_PORT TRANSPORT_PORT}. HOME_DIR must be
 * fresh (a node locks its data dir); the caller's script wipes it before each start.
 */
public final class EmbeddedOpenSearch {
    private EmbeddedOpenSearch() {}

    /** Node's constructor taking classpath plugins is protected. */
    private static final class CiNode extends Node {
        CiNode(Environment environment, Collection<Class<? extends Plugin>> plugins) {
            super(environment, plugins, true);
        }

        @Override
        protected void configureNodeAndClusterIdStateListener(ClusterService clusterService) {
            // the default one sets a static once-only holder meant for a single node per JVM
            // with logging set up by the distribution; nothing here needs it
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: EmbeddedOpenSearch HOME_DIR HTTP_PORT TRANSPORT_PORT");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        Files.createDirectories(home.resolve("config"));
        Files.createDirectories(home.resolve("data"));
        Files.createDirectories(home.resolve("logs"));
        Settings settings = Settings.builder()
                .put("path.home", home.toString())
                .put("path.data", home.resolve("data").toString())
                .put("path.logs", home.resolve("logs").toString())
                .put("cluster.name", "ordercenter-test")
                .put("node.name", "ci-0")
                .put("discovery.type", "single-node")
                .put("network.host", "127.0.0.1")
                .put("http.port", args[1])
                .put("transport.port", args[2])
                // a test box's disk may be fuller than the production watermarks allow
                .put("cluster.routing.allocation.disk.threshold_enabled", false)
                // tests create many small per-tenant indices
                .put("cluster.max_shards_per_node", 100000)
                .put("action.auto_create_index", false)
                .build();
        Environment environment = InternalSettingsPreparer.prepareEnvironment(
                settings, Map.of(), home.resolve("config"), () -> "ci-0");
        List<Class<? extends Plugin>> plugins =
                List.of(Netty4Plugin.class, CommonAnalysisPlugin.class);
        Node node = new CiNode(environment, plugins);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
            } catch (Exception closing) {
                closing.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }, "opensearch-shutdown"));
        node.start();
        System.out.println("embedded opensearch started: http://127.0.0.1:" + args[1]);
        stopped.await();
    }
}
