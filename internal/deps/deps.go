// Package deps pins the project's chosen modules in go.mod while the packages
// that use them are being written. It is removed once every module is used.
package deps

import (
	_ "github.com/emmansun/gmsm/sm2"
	_ "github.com/getkin/kin-openapi/openapi3"
	_ "github.com/mattn/go-sqlite3"
	_ "github.com/pkg/sftp"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/rabbitmq/amqp091-go"
	_ "github.com/robfig/cron/v3"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/spf13/cobra"
	_ "github.com/spf13/viper"
	_ "github.com/xuri/excelize/v2"
	_ "golang.org/x/crypto/ssh"
	_ "golang.org/x/text/encoding/simplifiedchinese"
	_ "gopkg.in/yaml.v3"
)
