// Package bucket is the S3 client of mount-ws, scoped to one bucket and one
// key prefix (a workspace). Every S3 request mount-ws makes is made here.
//
// # Keys
//
// Every key in this API is relative to the workspace prefix: "data/a.csv"
// means Prefix+"data/a.csv" in the bucket. The prefix is added and stripped
// in one place (keyspace), and a relative key that could address anything
// outside the prefix is refused with ErrInvalidKey before any request: no
// empty key, no leading "/", no empty segment ("a//b"), no "." or ".."
// segment, no NUL, no invalid UTF-8, at most 1024 bytes with the prefix. A
// trailing "/" is allowed and names a directory marker object ("dir/").
// Keys coming back from the server (listings) are stripped of the prefix
// but not validated: a bucket written by other tools can hold keys such as
// "a//b" that no caller could have asked for, and callers decide what to
// make of them.
//
// # Scoped credentials
//
// Workspace credentials only reach keys under the prefix. Bucket-level
// calls (HeadBucket, GetBucketLocation, ListMultipartUploads, a listing
// without the prefix) are refused by the server, so this package never
// makes them: it does not check that the bucket exists, and it cannot list
// incomplete multipart uploads; Upload reports each upload ID through
// UploadOptions.OnCreate so a caller can record it and abort it after a
// crash (AbortUpload).
//
// # Errors
//
// Errors wrap the SDK's error with the operation and relative key, and are
// classified for errors.Is: io/fs ErrNotExist (NoSuchKey, 404), io/fs
// ErrPermission (AccessDenied, 403), ErrPrecondition (412), ErrThrottled
// (503 SlowDown after the SDK's retries), ErrCredentials (the credentials
// provider failed, or the server refused the credentials themselves) and
// ErrInvalidKey (refused before any request; also io/fs ErrInvalid). A
// cancelled context comes back as an error matching context.Canceled.
//
// # Performance choices
//
// See New for the HTTP transport, checksum and payload-signing settings and
// why they were chosen.
//
// A Bucket is safe for concurrent use by many goroutines.
package bucket
