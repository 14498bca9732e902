/*
 * The connection kit's C client: Eclipse Paho C (synchronous MQTTClient API) over TLS to the lab's Amlen,
 * verifying the server's certificate and host name. Reads ../connection.env (environment variables of the same
 * names win), subscribes to KIT_TOPIC, publishes there and waits for its own message.
 *
 * Paho C sends (SNI) and verifies the host name of the URI it dials: it cannot dial one address and verify
 * another name. So this program dials ssl://KIT_SERVER_NAME:port, after checking that the name resolves to
 * KIT_ADDRESS (the lab's hosts entry makes it so); without that it stops with an error rather than verify less.
 *
 * Usage: build/kit [mtls|tls]   (mtls: client certificate on KIT_MTLS_PORT; tls: server-only on KIT_TLS_PORT)
 */
#define _POSIX_C_SOURCE 200809L
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <MQTTClient.h>

#define LIMIT_S 60
#define KIT_DIR ".." /* the kit directory: run.sh runs this program from c/ */

/* The library's own words for the first thing that went wrong (OpenSSL's error queue, Paho's trace). */
static char reason[512];

static void fail(const char *format, ...)
{
	char message[1024];
	va_list args;
	va_start(args, format);
	vsnprintf(message, sizeof message, format, args);
	va_end(args);
	if (reason[0])
		fprintf(stderr, "error: %s: %s\n", message, reason);
	else
		fprintf(stderr, "error: %s\n", message);
	exit(1);
}

static void keep_reason(const char *text, size_t len)
{
	size_t line = strcspn(text, "\n");
	if (reason[0] == '\0')
		snprintf(reason, sizeof reason, "%.*s", (int)(line < len ? line : len), text);
}

/* OpenSSL's error queue, handed over by Paho when a TLS call fails. */
static int on_ssl_error(const char *text, size_t len, void *context)
{
	(void)context;
	keep_reason(text, len);
	return 0;
}

/* Paho tells why a connection failed after the handshake (its host name check, a TLS alert from the server)
 * only in its trace: "YYYYMMDD HHMMSS.mmm <text>". */
static void on_trace(enum MQTTCLIENT_TRACE_LEVELS level, char *message)
{
	char *text = strstr(message, "X509_check_host for hostname");
	(void)level;
	if (!text)
		text = strstr(message, "SSL alert read:fatal");
	if (text)
		keep_reason(text, strlen(text));
}

/* KEY=value lines into the environment, keeping every variable the environment already has. */
static void load_env(const char *path)
{
	char line[1024];
	FILE *file = fopen(path, "r");
	if (!file)
		fail("%s: cannot open it", path);
	while (fgets(line, sizeof line, file)) {
		char *equals = strchr(line, '=');
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '#' || !equals)
			continue;
		*equals = '\0';
		setenv(line, equals + 1, 0);
	}
	fclose(file);
}

static const char *setting(const char *key)
{
	const char *value = getenv(key);
	if (!value || !*value)
		fail("%s is not set in %s/connection.env or the environment", key, KIT_DIR);
	return value;
}

static char *kit_file(const char *key)
{
	char *path = malloc(strlen(KIT_DIR) + strlen(setting(key)) + 2);
	if (!path)
		fail("out of memory");
	sprintf(path, "%s/%s", KIT_DIR, setting(key));
	return path;
}

/* Whether `name` resolves to (one of) the addresses of `address`. */
static int resolves_to(const char *name, const char *address)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *names, *addresses, *n, *a;
	int found = 0, rc;
	if ((rc = getaddrinfo(address, NULL, &hints, &addresses)) != 0)
		fail("KIT_ADDRESS %s: %s", address, gai_strerror(rc));
	if ((rc = getaddrinfo(name, NULL, &hints, &names)) != 0)
		fail("KIT_SERVER_NAME %s does not resolve (%s): Paho C dials the name it verifies, so it needs the "
		     "lab's hosts entry for it (`invoke up` adds it)", name, gai_strerror(rc));
	for (n = names; n && !found; n = n->ai_next)
		for (a = addresses; a && !found; a = a->ai_next)
			found = n->ai_addrlen == a->ai_addrlen && memcmp(n->ai_addr, a->ai_addr, n->ai_addrlen) == 0;
	freeaddrinfo(names);
	freeaddrinfo(addresses);
	return found;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "mtls";
	const char *server_name, *topic;
	char uri[512], payload[64];
	MQTTClient client;
	MQTTClient_connectOptions connect = MQTTClient_connectOptions_initializer;
	MQTTClient_SSLOptions ssl = MQTTClient_SSLOptions_initializer;
	MQTTClient_message message = MQTTClient_message_initializer;
	MQTTClient_deliveryToken token;
	time_t deadline = time(NULL) + LIMIT_S;
	int rc;

	if (strcmp(mode, "mtls") != 0 && strcmp(mode, "tls") != 0)
		fail("unknown mode '%s': use mtls or tls", mode);
	load_env(KIT_DIR "/connection.env");
	alarm(LIMIT_S); /* the overall limit: SIGALRM ends the program (exit status 142) */

	server_name = setting("KIT_SERVER_NAME");
	topic = setting("KIT_TOPIC");
	if (!resolves_to(server_name, setting("KIT_ADDRESS")))
		fail("KIT_SERVER_NAME %s does not resolve to KIT_ADDRESS %s: Paho C dials the name it verifies; "
		     "point the name at that address in the hosts file", server_name, setting("KIT_ADDRESS"));
	snprintf(uri, sizeof uri, "ssl://%s:%s", server_name,
	         setting(strcmp(mode, "mtls") == 0 ? "KIT_MTLS_PORT" : "KIT_TLS_PORT"));

	ssl.trustStore = kit_file("KIT_CA");   /* trust only the lab's CA */
	ssl.disableDefaultTrustStore = 1;
	ssl.enableServerCertAuth = 1;          /* verify the server's certificate chain */
	ssl.verify = 1;                        /* and that it names the host of the URI */
	ssl.ssl_error_cb = on_ssl_error;
	if (strcmp(mode, "mtls") == 0) {
		ssl.keyStore = kit_file("KIT_CERT");   /* the client certificate (and chain) */
		ssl.privateKey = kit_file("KIT_KEY");
	}
	connect.ssl = &ssl;
	connect.MQTTVersion = MQTTVERSION_3_1_1; /* no silent second try as MQTT 3.1 */
	connect.cleansession = 1;
	connect.keepAliveInterval = 30;
	connect.connectTimeout = LIMIT_S;

	MQTTClient_setTraceCallback(on_trace);
	MQTTClient_setTraceLevel(MQTTCLIENT_TRACE_PROTOCOL);
	if ((rc = MQTTClient_create(&client, uri, setting("KIT_CLIENT_ID"), MQTTCLIENT_PERSISTENCE_NONE, NULL))
	    != MQTTCLIENT_SUCCESS)
		fail("create a client for %s: %s", uri, MQTTClient_strerror(rc));
	if ((rc = MQTTClient_connect(client, &connect)) != MQTTCLIENT_SUCCESS)
		fail("connect to %s: %s (rc %d)", uri, MQTTClient_strerror(rc), rc);
	if ((rc = MQTTClient_subscribe(client, topic, 1)) != MQTTCLIENT_SUCCESS)
		fail("subscribe to %s: %s (rc %d)", topic, MQTTClient_strerror(rc), rc);

	snprintf(payload, sizeof payload, "hello from the C kit %08lx",
	         (unsigned long)(time(NULL) ^ ((unsigned long)getpid() << 16)));
	message.payload = payload;
	message.payloadlen = (int)strlen(payload);
	message.qos = 1;
	if ((rc = MQTTClient_publishMessage(client, topic, &message, &token)) != MQTTCLIENT_SUCCESS ||
	    (rc = MQTTClient_waitForCompletion(client, token, LIMIT_S * 1000UL)) != MQTTCLIENT_SUCCESS)
		fail("publish to %s: %s (rc %d)", topic, MQTTClient_strerror(rc), rc);

	while (time(NULL) < deadline) {
		char *name = NULL;
		int name_len = 0;
		MQTTClient_message *received = NULL;
		if ((rc = MQTTClient_receive(client, &name, &name_len, &received, 1000)) != MQTTCLIENT_SUCCESS &&
		    rc != MQTTCLIENT_TOPICNAME_TRUNCATED)
			fail("receive on %s: %s (rc %d)", topic, MQTTClient_strerror(rc), rc);
		if (received) {
			int mine = received->payloadlen == message.payloadlen &&
			           memcmp(received->payload, payload, (size_t)message.payloadlen) == 0;
			MQTTClient_freeMessage(&received);
			MQTTClient_free(name);
			if (mine) {
				printf("received %s: %s\n", topic, payload);
				MQTTClient_disconnect(client, 1000);
				MQTTClient_destroy(&client);
				return 0;
			}
		}
	}
	fail("no message back on %s within %d s", topic, LIMIT_S);
	return 1;
}
