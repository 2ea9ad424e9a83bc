package workload

import "k8s.io/apimachinery/pkg/util/intstr"

func intOrPort(p int32) intstr.IntOrString { return intstr.FromInt32(p) }
