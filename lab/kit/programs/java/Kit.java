// The connection kit's Java client: JSSE (the kit's PKCS#12 keystore and truststore) and the FuseSource MQTT client
// (Debian: libmqtt-client-java) over TLS to the lab's Amlen, verifying the server's certificate and host name.
// Reads ../connection.env (environment variables of the same names win), dials KIT_ADDRESS, sends (SNI) and
// verifies KIT_SERVER_NAME, subscribes to KIT_TOPIC, publishes there and waits for its own message.
//
// Usage: java -cp build/classes:<jars> Kit [mtls|tls]
//        (mtls: client certificate on KIT_MTLS_PORT; tls: server-only on KIT_TLS_PORT)

import java.io.InputStream;
import java.io.Reader;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.SecureRandom;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLContextSpi;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLServerSocketFactory;
import javax.net.ssl.SSLSessionContext;
import javax.net.ssl.SSLSocketFactory;
import javax.net.ssl.TrustManagerFactory;
import org.fusesource.mqtt.client.BlockingConnection;
import org.fusesource.mqtt.client.MQTT;
import org.fusesource.mqtt.client.Message;
import org.fusesource.mqtt.client.QoS;
import org.fusesource.mqtt.client.Topic;

public final class Kit {
    private static final long LIMIT_S = 60;
    private static final Path KIT_DIR = Path.of(".."); // the kit directory: run.sh runs this from java/

    private final Properties settings = new Properties();

    private Kit() throws Exception {
        try (Reader env = Files.newBufferedReader(KIT_DIR.resolve("connection.env"), StandardCharsets.UTF_8)) {
            settings.load(env); // KEY=value lines
        }
        System.getenv().forEach((key, value) -> {
            if (key.startsWith("KIT_")) {
                settings.setProperty(key, value); // the environment wins over the file
            }
        });
    }

    private String setting(String key) {
        String value = settings.getProperty(key, "");
        if (value.isEmpty()) {
            throw new IllegalArgumentException(key + " is not set in " + KIT_DIR.resolve("connection.env")
                    + " or the environment");
        }
        return value;
    }

    private KeyStore pkcs12(String key, char[] password) throws Exception {
        KeyStore store = KeyStore.getInstance("PKCS12");
        try (InputStream in = Files.newInputStream(KIT_DIR.resolve(setting(key)))) {
            store.load(in, password);
        }
        return store;
    }

    /** Trust only the lab's CA (truststore.p12); on mtls, present the client certificate (client.p12). */
    private SSLContext sslContext(boolean mutual) throws Exception {
        char[] password = Files.readString(KIT_DIR.resolve(setting("KIT_PASSWORD_FILE"))).strip().toCharArray();
        TrustManagerFactory trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        trust.init(pkcs12("KIT_TRUSTSTORE", password));
        KeyManager[] keys = null;
        if (mutual) {
            KeyManagerFactory keyManagers = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            keyManagers.init(pkcs12("KIT_KEYSTORE", password), password);
            keys = keyManagers.getKeyManagers();
        }
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(keys, trust.getTrustManagers(), new SecureRandom());
        return context;
    }

    private void run(String mode) throws Exception {
        String serverName = setting("KIT_SERVER_NAME");
        String topic = setting("KIT_TOPIC");
        String port = setting(mode.equals("mtls") ? "KIT_MTLS_PORT" : "KIT_TLS_PORT");
        String address = InetAddress.getByName(setting("KIT_ADDRESS")).getHostAddress();

        MQTT mqtt = new MQTT();
        mqtt.setHost("tls://" + (address.contains(":") ? "[" + address + "]" : address) + ":" + port);
        mqtt.setSslContext(new VerifyingContext(sslContext(mode.equals("mtls")), serverName));
        mqtt.setClientId(setting("KIT_CLIENT_ID"));
        mqtt.setVersion("3.1.1");
        mqtt.setCleanSession(true);
        mqtt.setConnectAttemptsMax(0); // report the first failure instead of retrying
        mqtt.setReconnectAttemptsMax(0);

        String payload = "hello from the Java kit " + Long.toHexString(new SecureRandom().nextInt() & 0xffffffffL);
        BlockingConnection connection = mqtt.blockingConnection();
        connection.connect();
        connection.subscribe(new Topic[] {new Topic(topic, QoS.AT_LEAST_ONCE)});
        connection.publish(topic, payload.getBytes(StandardCharsets.UTF_8), QoS.AT_LEAST_ONCE, false);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(LIMIT_S);
        for (long left; (left = deadline - System.nanoTime()) > 0; ) {
            Message message = connection.receive(left, TimeUnit.NANOSECONDS);
            if (message == null) {
                break;
            }
            message.ack();
            if (message.getTopic().equals(topic) && new String(message.getPayload(), StandardCharsets.UTF_8).equals(payload)) {
                System.out.println("received " + topic + ": " + payload);
                connection.disconnect();
                return;
            }
        }
        throw new IllegalStateException("no message back on " + topic + " within " + LIMIT_S + " s");
    }

    public static void main(String[] args) {
        // HawtDispatch (the MQTT client's event loop) registers JMX beans at start, a second's work that a
        // one-shot client needs none of.
        System.setProperty("hawtdispatch.jmx", "false");
        String mode = args.length > 0 ? args[0] : "mtls";
        Thread limit = new Thread(() -> {
            try {
                Thread.sleep(TimeUnit.SECONDS.toMillis(LIMIT_S));
                fail("no answer within " + LIMIT_S + " s");
            } catch (InterruptedException done) {
                Thread.currentThread().interrupt();
            }
        });
        limit.setDaemon(true);
        limit.start();
        try {
            if (!mode.equals("mtls") && !mode.equals("tls")) {
                throw new IllegalArgumentException("unknown mode '" + mode + "': use mtls or tls");
            }
            new Kit().run(mode);
            System.exit(0); // the MQTT client's dispatch threads would keep the JVM alive
        } catch (Exception e) {
            fail(describe(e));
        }
    }

    /** The exception and its causes, in one line (JSSE puts the host-name mismatch in a cause). */
    private static String describe(Throwable error) {
        StringBuilder text = new StringBuilder();
        for (Throwable e = error; e != null; e = e.getCause() == e ? null : e.getCause()) {
            String message = e.getMessage() == null ? e.getClass().getName() : e.getMessage();
            if (text.indexOf(message) < 0) {
                text.append(text.length() == 0 ? "" : ": ").append(message);
            }
        }
        return text.toString();
    }

    private static void fail(String message) {
        System.err.println("error: " + message.replaceAll("\\s*\\R\\s*", " ").strip());
        System.exit(1);
    }

    /**
     * The kit's SSLContext, with the server name the lab's certificate carries: every SSLEngine the MQTT client
     * asks for sends it (SNI) and verifies it (endpoint identification "HTTPS", the same check browsers make),
     * whichever address the client dials. The MQTT client takes an SSLContext and nothing else, hence this wrapper.
     */
    private static final class VerifyingContext extends SSLContext {
        VerifyingContext(SSLContext context, String serverName) {
            super(new Spi(context, serverName), context.getProvider(), context.getProtocol());
        }
    }

    private static final class Spi extends SSLContextSpi {
        private final SSLContext context;
        private final String serverName;

        Spi(SSLContext context, String serverName) {
            this.context = context;
            this.serverName = serverName;
        }

        private SSLEngine verifying(SSLEngine engine) {
            SSLParameters parameters = engine.getSSLParameters();
            parameters.setEndpointIdentificationAlgorithm("HTTPS"); // host-name verification: ON
            if (!serverName.matches("[0-9.]+|.*:.*")) { // RFC 6066: no address in SNI
                parameters.setServerNames(List.of(new SNIHostName(serverName)));
            }
            engine.setSSLParameters(parameters);
            return engine;
        }

        @Override
        protected SSLEngine engineCreateSSLEngine() {
            return verifying(context.createSSLEngine(serverName, -1));
        }

        @Override
        protected SSLEngine engineCreateSSLEngine(String host, int port) {
            return verifying(context.createSSLEngine(serverName, port)); // the name to verify, not the address
        }

        @Override
        protected void engineInit(KeyManager[] km, javax.net.ssl.TrustManager[] tm, SecureRandom random) {
            throw new UnsupportedOperationException("already initialised");
        }

        @Override
        protected SSLSocketFactory engineGetSocketFactory() {
            return context.getSocketFactory();
        }

        @Override
        protected SSLServerSocketFactory engineGetServerSocketFactory() {
            return context.getServerSocketFactory();
        }

        @Override
        protected SSLSessionContext engineGetServerSessionContext() {
            return context.getServerSessionContext();
        }

        @Override
        protected SSLSessionContext engineGetClientSessionContext() {
            return context.getClientSessionContext();
        }
    }
}
