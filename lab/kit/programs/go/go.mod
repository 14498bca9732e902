module amlen-lab/kit

go 1.20

require github.com/eclipse/paho.mqtt.golang v1.5.1
