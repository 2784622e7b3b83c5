//! The protobuf shapes of the kinds kubectl's typed commands send (`create namespace |
//! configmap | secret | serviceaccount | service | deployment | job | cronjob | quota |
//! role | rolebinding | clusterrole | clusterrolebinding`, `auth can-i [--list]`,
//! `auth whoami`), with Kubernetes' field numbers.
//!
//! One message per line: `Name: <number> <json name> <type>, ...`. Types: `s` string,
//! `i` integer, `b` bool, `y` bytes (base64 in JSON), `t` Time (RFC 3339), `q` Quantity,
//! `x` IntOrString, another message's name; `[]T` repeated, `{}T` a map from strings.
//! A trailing `!` keeps a zero value (Go pointer fields, where 0 and false are choices).

pub const SCHEMA: &str = "
Unknown: 1 typeMeta RuntimeTypeMeta, 2 raw y, 3 contentEncoding s, 4 contentType s
RuntimeTypeMeta: 1 apiVersion s, 2 kind s
ObjectMeta: 1 name s, 2 generateName s, 3 namespace s, 4 selfLink s, 5 uid s, 6 resourceVersion s, 7 generation i, 8 creationTimestamp t, 9 deletionTimestamp t, 10 deletionGracePeriodSeconds i!, 11 labels {}s, 12 annotations {}s, 13 ownerReferences []OwnerReference, 14 finalizers []s
OwnerReference: 1 kind s, 3 name s, 4 uid s, 5 apiVersion s, 6 controller b!, 7 blockOwnerDeletion b!
LabelSelector: 1 matchLabels {}s, 2 matchExpressions []LabelSelectorRequirement
LabelSelectorRequirement: 1 key s, 2 operator s, 3 values []s
Namespace: 1 metadata ObjectMeta, 2 spec NamespaceSpec, 3 status NamespaceStatus
NamespaceSpec: 1 finalizers []s
NamespaceStatus: 1 phase s
ConfigMap: 1 metadata ObjectMeta, 2 data {}s, 3 binaryData {}y, 4 immutable b!
Secret: 1 metadata ObjectMeta, 2 data {}y, 3 type s, 4 stringData {}s, 5 immutable b!
ServiceAccount: 1 metadata ObjectMeta, 2 secrets []ObjectReference, 3 imagePullSecrets []LocalObjectReference, 4 automountServiceAccountToken b!
ObjectReference: 1 kind s, 2 namespace s, 3 name s, 4 uid s, 5 apiVersion s, 6 resourceVersion s, 7 fieldPath s
LocalObjectReference: 1 name s
Service: 1 metadata ObjectMeta, 2 spec ServiceSpec, 3 status ServiceStatus
ServiceSpec: 1 ports []ServicePort, 2 selector {}s, 3 clusterIP s, 4 type s, 5 externalIPs []s, 7 sessionAffinity s, 8 loadBalancerIP s, 9 loadBalancerSourceRanges []s, 10 externalName s, 11 externalTrafficPolicy s, 12 healthCheckNodePort i, 13 publishNotReadyAddresses b, 17 ipFamilyPolicy s, 18 clusterIPs []s, 19 ipFamilies []s, 20 allocateLoadBalancerNodePorts b!, 21 loadBalancerClass s, 22 internalTrafficPolicy s
ServicePort: 1 name s, 2 protocol s, 3 port i, 4 targetPort x, 5 nodePort i, 6 appProtocol s
ServiceStatus: 1 loadBalancer LoadBalancerStatus
LoadBalancerStatus:
PodTemplateSpec: 1 metadata ObjectMeta, 2 spec PodSpec
PodSpec: 2 containers []Container, 3 restartPolicy s, 4 terminationGracePeriodSeconds i!, 5 activeDeadlineSeconds i!, 6 dnsPolicy s, 7 nodeSelector {}s, 8 serviceAccountName s, 9 serviceAccount s, 10 nodeName s, 11 hostNetwork b, 12 hostPID b, 13 hostIPC b, 15 imagePullSecrets []LocalObjectReference, 16 hostname s, 17 subdomain s, 19 schedulerName s, 20 initContainers []Container, 21 automountServiceAccountToken b!, 24 priorityClassName s
Container: 1 name s, 2 image s, 3 command []s, 4 args []s, 5 workingDir s, 6 ports []ContainerPort, 7 env []EnvVar, 8 resources ResourceRequirements, 13 terminationMessagePath s, 14 imagePullPolicy s, 16 stdin b, 17 stdinOnce b, 18 tty b, 20 terminationMessagePolicy s, 24 restartPolicy s
ContainerPort: 1 name s, 2 hostPort i, 3 containerPort i, 4 protocol s, 5 hostIP s
EnvVar: 1 name s, 2 value s
ResourceRequirements: 1 limits {}q, 2 requests {}q
ResourceQuota: 1 metadata ObjectMeta, 2 spec ResourceQuotaSpec, 3 status ResourceQuotaStatus
ResourceQuotaSpec: 1 hard {}q, 2 scopes []s, 3 scopeSelector ScopeSelector
ResourceQuotaStatus: 1 hard {}q, 2 used {}q
ScopeSelector: 1 matchExpressions []ScopedResourceSelectorRequirement
ScopedResourceSelectorRequirement: 1 scopeName s, 2 operator s, 3 values []s
Deployment: 1 metadata ObjectMeta, 2 spec DeploymentSpec, 3 status DeploymentStatus
DeploymentSpec: 1 replicas i!, 2 selector LabelSelector, 3 template PodTemplateSpec, 4 strategy DeploymentStrategy, 5 minReadySeconds i, 6 revisionHistoryLimit i!, 7 paused b, 9 progressDeadlineSeconds i!
DeploymentStrategy: 1 type s, 2 rollingUpdate RollingUpdateDeployment
RollingUpdateDeployment: 1 maxUnavailable x, 2 maxSurge x
DeploymentStatus: 1 observedGeneration i, 2 replicas i, 3 updatedReplicas i, 4 availableReplicas i, 5 unavailableReplicas i, 7 readyReplicas i, 8 collisionCount i!, 9 terminatingReplicas i!
Job: 1 metadata ObjectMeta, 2 spec JobSpec, 3 status JobStatus
JobSpec: 1 parallelism i!, 2 completions i!, 3 activeDeadlineSeconds i!, 4 selector LabelSelector, 5 manualSelector b!, 6 template PodTemplateSpec, 7 backoffLimit i!, 8 ttlSecondsAfterFinished i!, 9 completionMode s, 10 suspend b!
JobStatus: 2 startTime t, 3 completionTime t, 4 active i, 5 succeeded i, 6 failed i, 7 completedIndexes s
CronJob: 1 metadata ObjectMeta, 2 spec CronJobSpec, 3 status CronJobStatus
CronJobSpec: 1 schedule s, 2 startingDeadlineSeconds i!, 3 concurrencyPolicy s, 4 suspend b!, 5 jobTemplate JobTemplateSpec, 6 successfulJobsHistoryLimit i!, 7 failedJobsHistoryLimit i!, 8 timeZone s
CronJobStatus: 1 active []ObjectReference, 4 lastScheduleTime t, 5 lastSuccessfulTime t
JobTemplateSpec: 1 metadata ObjectMeta, 2 spec JobSpec
Role: 1 metadata ObjectMeta, 2 rules []PolicyRule
ClusterRole: 1 metadata ObjectMeta, 2 rules []PolicyRule, 3 aggregationRule AggregationRule
PolicyRule: 1 verbs []s, 2 apiGroups []s, 3 resources []s, 4 resourceNames []s, 5 nonResourceURLs []s
AggregationRule: 1 clusterRoleSelectors []LabelSelector
RoleBinding: 1 metadata ObjectMeta, 2 subjects []Subject, 3 roleRef RoleRef
ClusterRoleBinding: 1 metadata ObjectMeta, 2 subjects []Subject, 3 roleRef RoleRef
Subject: 1 kind s, 2 apiGroup s, 3 name s, 4 namespace s
RoleRef: 1 apiGroup s, 2 kind s, 3 name s
SelfSubjectAccessReview: 1 metadata ObjectMeta, 2 spec SelfSubjectAccessReviewSpec, 3 status SubjectAccessReviewStatus
SelfSubjectAccessReviewSpec: 1 resourceAttributes ResourceAttributes, 2 nonResourceAttributes NonResourceAttributes
ResourceAttributes: 1 namespace s, 2 verb s, 3 group s, 4 version s, 5 resource s, 6 subresource s, 7 name s
NonResourceAttributes: 1 path s, 2 verb s
SubjectAccessReviewStatus: 1 allowed b, 2 reason s, 3 evaluationError s, 4 denied b
SelfSubjectRulesReview: 1 metadata ObjectMeta, 2 spec SelfSubjectRulesReviewSpec, 3 status SubjectRulesReviewStatus
SelfSubjectRulesReviewSpec: 1 namespace s
SubjectRulesReviewStatus: 3 incomplete b, 4 evaluationError s
SelfSubjectReview: 1 metadata ObjectMeta, 2 status SelfSubjectReviewStatus
SelfSubjectReviewStatus: 1 userInfo UserInfo
UserInfo: 1 username s, 2 uid s, 3 groups []s
TokenRequest: 1 metadata ObjectMeta, 2 spec TokenRequestSpec, 3 status TokenRequestStatus
TokenRequestSpec: 1 audiences []s, 3 boundObjectRef BoundObjectReference, 4 expirationSeconds i!
BoundObjectReference: 1 kind s, 2 apiVersion s, 3 name s, 4 uid s
TokenRequestStatus: 1 token s, 2 expirationTimestamp t
";

/// The kinds decoded from protobuf, by (apiVersion, kind); each is its own message.
pub const KINDS: &[(&str, &str)] = &[
    ("v1", "Namespace"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "ServiceAccount"),
    ("v1", "Service"),
    ("v1", "ResourceQuota"),
    ("apps/v1", "Deployment"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"),
    ("authentication.k8s.io/v1", "SelfSubjectReview"),
    ("authentication.k8s.io/v1", "TokenRequest"),
];
