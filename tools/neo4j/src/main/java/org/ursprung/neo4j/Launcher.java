package org.ursprung.neo4j;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.ConnectorPortRegister;
import org.neo4j.configuration.connectors.ConnectorType;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.io.ByteUnit;
import org.neo4j.kernel.internal.GraphDatabaseAPI;

/**
 * A Neo4j 5 community database with its Bolt connector on loopback, for tests and benchmarks.
 *
 * <pre>java -cp 'target/classes:target/lib/*' org.ursprung.neo4j.Launcher PORT DATA_DIR [PAGECACHE_MB [SETTING=VALUE...]]</pre>
 *
 * PORT 0 picks a free port. Prints {@code started bolt://127.0.0.1:PORT} once Bolt accepts
 * connections, then runs until stdin closes or the process gets SIGTERM; both shut the
 * database down cleanly. Authentication is off: the server listens on loopback only.
 */
public final class Launcher {
    private Launcher() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: Launcher PORT DATA_DIR [PAGECACHE_MB [SETTING=VALUE...]]");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        Path data = Path.of(args[1]).toAbsolutePath();
        long pagecacheMb = args.length > 2 ? Long.parseLong(args[2]) : 128;
        StringBuilder extra = new StringBuilder();
        for (int i = 3; i < args.length; i++) {
            if (args[i].indexOf('=') <= 0 || args[i].contains("\n")) {
                System.err.println("not a SETTING=VALUE: " + args[i]);
                System.exit(2);
            }
            extra.append(args[i]).append('\n');
        }
        Files.createDirectories(data);
        Path conf = data.resolve("launcher.conf"); // further settings, as neo4j.conf has them
        Files.writeString(conf, extra.toString());

        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(data)
                .loadPropertiesFromFile(conf)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                .setConfig(BoltConnector.advertised_address, new SocketAddress("127.0.0.1", port))
                .setConfig(HttpConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.auth_enabled, false)
                .setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(pagecacheMb))
                .build();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            dbms.shutdown();
        }, "neo4j-shutdown"));

        GraphDatabaseService db = dbms.database(GraphDatabaseSettings.DEFAULT_DATABASE_NAME);
        ConnectorPortRegister ports = ((GraphDatabaseAPI) db).getDependencyResolver()
                .resolveDependency(ConnectorPortRegister.class);
        int bound = ports.getLocalAddress(ConnectorType.BOLT).getPort();
        System.out.println("started bolt://127.0.0.1:" + bound);
        System.out.flush();

        waitForStdinClose(System.in);
        System.exit(0); // runs the shutdown hook
    }

    private static void waitForStdinClose(InputStream in) {
        byte[] buffer = new byte[256];
        try {
            while (in.read(buffer) >= 0) {
                // input is ignored; only its end matters
            }
        } catch (IOException e) {
            // a broken stdin ends the server like a closed one
        }
    }
}
