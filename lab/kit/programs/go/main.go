// The connection kit's Go client: Eclipse Paho Go over TLS to the lab's Amlen, verifying the server's
// certificate and host name. Reads ../connection.env (environment variables of the same names win), dials
// KIT_ADDRESS, sends and verifies KIT_SERVER_NAME, subscribes to KIT_TOPIC, publishes there and waits for its own
// message.
//
// Usage: go run . [mtls|tls]   (mtls: client certificate on KIT_MTLS_PORT; tls: server-only on KIT_TLS_PORT)
package main

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

const limit = 60 * time.Second

// kitDir is the kit directory: the parent of the directory this program runs in (run.sh changes into go/).
const kitDir = ".."

func fail(format string, args ...interface{}) {
	fmt.Fprintln(os.Stderr, "error: "+strings.Join(strings.Fields(fmt.Sprintf(format, args...)), " "))
	os.Exit(1)
}

// pahoErrors keeps what Paho logs at ERROR level. Paho Go 1.1 (Debian 12's package) reports a connection that
// fails after the handshake (a server refusing a missing client certificate under TLS 1.3) as
// "Network Error : %!s(<nil>)": the reason is only in that log. Newer Paho returns it from Connect itself.
type pahoErrors struct {
	mu    sync.Mutex
	first string
}

func (p *pahoErrors) Write(line []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.first == "" {
		p.first = strings.TrimSpace(string(line))
	}
	return len(line), nil
}

func (p *pahoErrors) explain(err error) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if text := fmt.Sprint(err); !strings.Contains(text, "%!s(<nil>)") || p.first == "" {
		return text
	}
	return p.first
}

// loadEnv reads KEY=value lines into the environment, keeping every variable the environment already has.
func loadEnv(path string) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	lines := bufio.NewScanner(file)
	for lines.Scan() {
		key, value, found := strings.Cut(strings.TrimSpace(lines.Text()), "=")
		if !found || strings.HasPrefix(key, "#") {
			continue
		}
		if _, set := os.LookupEnv(key); !set {
			os.Setenv(key, value)
		}
	}
	return lines.Err()
}

func setting(key string) string {
	value := os.Getenv(key)
	if value == "" {
		fail("%s is not set in %s or the environment", key, filepath.Join(kitDir, "connection.env"))
	}
	return value
}

func kitFile(key string) string {
	return filepath.Join(kitDir, setting(key))
}

func tlsConfig(mode string) *tls.Config {
	caPEM, err := os.ReadFile(kitFile("KIT_CA"))
	if err != nil {
		fail("KIT_CA: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		fail("KIT_CA: no PEM certificate in %s", kitFile("KIT_CA"))
	}
	config := &tls.Config{
		RootCAs:    roots,                      // trust only the lab's CA
		ServerName: setting("KIT_SERVER_NAME"), // the name to send (SNI) and verify, not the address dialled
		MinVersion: tls.VersionTLS12,
	}
	if mode == "mtls" {
		// The client certificate (and chain) the server asks for.
		pair, err := tls.LoadX509KeyPair(kitFile("KIT_CERT"), kitFile("KIT_KEY"))
		if err != nil {
			fail("client certificate: %v", err)
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return config
}

func main() {
	mode := "mtls"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	if mode != "mtls" && mode != "tls" {
		fail("unknown mode '%s': use mtls or tls", mode)
	}
	if err := loadEnv(filepath.Join(kitDir, "connection.env")); err != nil {
		fail("connection.env: %v", err)
	}
	time.AfterFunc(limit, func() { fail("no message back within %v", limit) })

	port := setting("KIT_MTLS_PORT")
	if mode == "tls" {
		port = setting("KIT_TLS_PORT")
	}
	topic := setting("KIT_TOPIC")
	nonce := make([]byte, 4)
	if _, err := rand.Read(nonce); err != nil {
		fail("random: %v", err)
	}
	payload := "hello from the Go kit " + hex.EncodeToString(nonce)

	logged := &pahoErrors{}
	mqtt.ERROR = log.New(logged, "", 0)
	received := make(chan string, 1)
	options := mqtt.NewClientOptions().
		AddBroker("ssl://" + net.JoinHostPort(setting("KIT_ADDRESS"), port)).
		SetClientID(setting("KIT_CLIENT_ID")).
		SetProtocolVersion(4). // MQTT 3.1.1, no silent retry as 3.1
		SetTLSConfig(tlsConfig(mode)).
		SetConnectTimeout(limit).
		SetAutoReconnect(false).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { fail("connection lost: %v", err) })
	client := mqtt.NewClient(options)
	if token := client.Connect(); !token.WaitTimeout(limit) || token.Error() != nil {
		fail("connect: %s", logged.explain(token.Error()))
	}
	onMessage := func(_ mqtt.Client, message mqtt.Message) {
		if message.Topic() == topic && string(message.Payload()) == payload {
			received <- message.Topic()
		}
	}
	if token := client.Subscribe(topic, 1, onMessage); !token.WaitTimeout(limit) || token.Error() != nil {
		fail("subscribe to %s: %v", topic, token.Error())
	}
	if token := client.Publish(topic, 1, false, payload); !token.WaitTimeout(limit) || token.Error() != nil {
		fail("publish to %s: %v", topic, token.Error())
	}
	fmt.Printf("received %s: %s\n", <-received, payload)
	client.Disconnect(250)
}
