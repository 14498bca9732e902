module amlen-lab/kit

go 1.19

require github.com/eclipse/paho.mqtt.golang v1.5.1
