package wsstack

import (
	"encoding/json"
	"fmt"
	"sort"
)

// objectActions are what a workspace session may do to keys under its prefix.
// Multipart upload is authorised as s3:PutObject, copy as Get on the source
// and Put on the destination, HEAD as GetObject.
var objectActions = []string{
	"s3:GetObject",
	"s3:PutObject",
	"s3:DeleteObject",
	"s3:AbortMultipartUpload",
	"s3:ListMultipartUploadParts",
}

type policyDoc struct {
	Version   string            `json:"Version"`
	Statement []policyStatement `json:"Statement"`
}

type policyStatement struct {
	Sid       string                       `json:"Sid"`
	Effect    string                       `json:"Effect"`
	Principal map[string][]string          `json:"Principal"`
	Action    []string                     `json:"Action"`
	Resource  []string                     `json:"Resource"`
	Condition map[string]map[string]string `json:"Condition,omitempty"`
}

// bucketPolicy returns the one policy of bucket that scopes every workspace
// stored in it: two statements per workspace role, object actions on
// bucket/prefix* and ListBucket only for listings whose prefix parameter lies
// under the workspace prefix. Anything else (bucket-level calls, listing
// without a prefix, other prefixes) is implicitly denied.
func bucketPolicy(bucket string, workspaces []Workspace) ([]byte, error) {
	sorted := append([]Workspace(nil), workspaces...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].slug() < sorted[j].slug() })
	doc := policyDoc{Version: "2012-10-17"}
	for i, w := range sorted {
		principal := map[string][]string{"AWS": {roleArn(w.Org, w.WS)}}
		doc.Statement = append(doc.Statement,
			policyStatement{
				Sid:       sid("objects", i),
				Effect:    "Allow",
				Principal: principal,
				Action:    objectActions,
				Resource:  []string{"arn:aws:s3:::" + bucket + "/" + w.Prefix + "*"},
			},
			policyStatement{
				Sid:       sid("list", i),
				Effect:    "Allow",
				Principal: principal,
				Action:    []string{"s3:ListBucket"},
				Resource:  []string{"arn:aws:s3:::" + bucket},
				Condition: map[string]map[string]string{
					"StringLike": {"s3:prefix": w.Prefix + "*"},
				},
			})
	}
	return json.Marshal(doc)
}

func sid(kind string, i int) string {
	return fmt.Sprintf("%s%d", kind, i)
}
