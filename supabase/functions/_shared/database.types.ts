
export type Json = string | number | boolean | null | { [key: string]: Json | undefined } | Json[]

export type Database = {
  
  "audit": {
          Tables: {
            "log": {
                  Row: {
                    "action": string,"actor_api_key_id": string | null,"actor_user_id": string | null,"changed_columns": (string)[],"db_role": string,"forwarded_for": string | null,"id": number,"ip": unknown,"new_values": Json | null,"occurred_at": string,"old_values": Json | null,"org_id": string | null,"request_id": string | null,"row_id": string,"table_name": string,"transaction_id": number,"user_agent": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "action": string,"actor_api_key_id"?: string | null,"actor_user_id"?: string | null,"changed_columns": (string)[],"db_role": string,"forwarded_for"?: string | null,"id"?: never,"ip"?: unknown,"new_values"?: Json | null,"occurred_at"?: string,"old_values"?: Json | null,"org_id"?: string | null,"request_id"?: string | null,"row_id": string,"table_name": string,"transaction_id"?: number,"user_agent"?: string | null
                  }
                  Update: {
                    "action"?: string,"actor_api_key_id"?: string | null,"actor_user_id"?: string | null,"changed_columns"?: (string)[],"db_role"?: string,"forwarded_for"?: string | null,"id"?: never,"ip"?: unknown,"new_values"?: Json | null,"occurred_at"?: string,"old_values"?: Json | null,"org_id"?: string | null,"request_id"?: string | null,"row_id"?: string,"table_name"?: string,"transaction_id"?: number,"user_agent"?: string | null
                  }
                  Relationships: [
                    
                  ]
                }
          }
          Views: {
            [_ in never]: never
          }
          Functions: {
            [_ in never]: never
          }
          Enums: {
            [_ in never]: never
          }
          CompositeTypes: {
            [_ in never]: never
          }
        },"public": {
          Tables: {
            "analytics_daily": {
                  Row: {
                    "bucket": string,"event_type": string,"events": number,"org_id": string,"sums": NonNullable<Json>,"updated_at": string,"users": number
                  }
                  ComputedFields: never
                  Insert: {
                    "bucket": string,"event_type": string,"events": number,"org_id": string,"sums"?: NonNullable<Json>,"updated_at"?: string,"users": number
                  }
                  Update: {
                    "bucket"?: string,"event_type"?: string,"events"?: number,"org_id"?: string,"sums"?: NonNullable<Json>,"updated_at"?: string,"users"?: number
                  }
                  Relationships: [
                    {
      foreignKeyName: "analytics_daily_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"analytics_event_types": {
                  Row: {
                    "description": string,"key": string,"numeric_properties": (string)[]
                  }
                  ComputedFields: never
                  Insert: {
                    "description": string,"key": string,"numeric_properties"?: (string)[]
                  }
                  Update: {
                    "description"?: string,"key"?: string,"numeric_properties"?: (string)[]
                  }
                  Relationships: [
                    
                  ]
                },"analytics_events": {
                  Row: {
                    "event_type": string,"id": number,"occurred_at": string,"org_id": string,"properties": NonNullable<Json>,"received_at": string,"user_id": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "event_type": string,"id"?: number,"occurred_at": string,"org_id": string,"properties"?: NonNullable<Json>,"received_at"?: string,"user_id"?: string | null
                  }
                  Update: {
                    "event_type"?: string,"id"?: number,"occurred_at"?: string,"org_id"?: string,"properties"?: NonNullable<Json>,"received_at"?: string,"user_id"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "analytics_events_event_type_fkey"
      columns: ["event_type"]
isOneToOne: false
      referencedRelation: "analytics_event_types"
      referencedColumns: ["key"]
    },{
      foreignKeyName: "analytics_events_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"analytics_hourly": {
                  Row: {
                    "bucket": string,"event_type": string,"events": number,"org_id": string,"sums": NonNullable<Json>,"updated_at": string,"users": number
                  }
                  ComputedFields: never
                  Insert: {
                    "bucket": string,"event_type": string,"events": number,"org_id": string,"sums"?: NonNullable<Json>,"updated_at"?: string,"users": number
                  }
                  Update: {
                    "bucket"?: string,"event_type"?: string,"events"?: number,"org_id"?: string,"sums"?: NonNullable<Json>,"updated_at"?: string,"users"?: number
                  }
                  Relationships: [
                    {
      foreignKeyName: "analytics_hourly_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"api_keys": {
                  Row: {
                    "created_at": string,"created_by": string | null,"expires_at": string | null,"id": string,"key_hash": string,"key_prefix": string,"last_used_at": string | null,"mqtt_topics": (string)[],"name": string,"org_id": string,"revoked_at": string | null,"revoked_by": string | null,"scopes": (string)[],"updated_at": string,"updated_by": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"created_by"?: string | null,"expires_at"?: string | null,"id"?: string,"key_hash": string,"key_prefix": string,"last_used_at"?: string | null,"mqtt_topics"?: (string)[],"name": string,"org_id": string,"revoked_at"?: string | null,"revoked_by"?: string | null,"scopes": (string)[],"updated_at"?: string,"updated_by"?: string | null
                  }
                  Update: {
                    "created_at"?: string,"created_by"?: string | null,"expires_at"?: string | null,"id"?: string,"key_hash"?: string,"key_prefix"?: string,"last_used_at"?: string | null,"mqtt_topics"?: (string)[],"name"?: string,"org_id"?: string,"revoked_at"?: string | null,"revoked_by"?: string | null,"scopes"?: (string)[],"updated_at"?: string,"updated_by"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "api_keys_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"data_exports": {
                  Row: {
                    "completed_at": string | null,"created_at": string,"created_by": string | null,"error": string | null,"id": string,"job_id": string | null,"object_path": string | null,"org_id": string,"progress": number,"required_permissions": (string)[],"status": string,"updated_at": string,"updated_by": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "completed_at"?: string | null,"created_at"?: string,"created_by"?: string | null,"error"?: string | null,"id"?: string,"job_id"?: string | null,"object_path"?: string | null,"org_id": string,"progress"?: number,"required_permissions"?: (string)[],"status"?: string,"updated_at"?: string,"updated_by"?: string | null
                  }
                  Update: {
                    "completed_at"?: string | null,"created_at"?: string,"created_by"?: string | null,"error"?: string | null,"id"?: string,"job_id"?: string | null,"object_path"?: string | null,"org_id"?: string,"progress"?: number,"required_permissions"?: (string)[],"status"?: string,"updated_at"?: string,"updated_by"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "data_exports_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"exercise_team_members": {
                  Row: {
                    "created_at": string,"created_by": string | null,"org_id": string,"team_id": string,"updated_at": string,"updated_by": string | null,"user_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"created_by"?: string | null,"org_id": string,"team_id": string,"updated_at"?: string,"updated_by"?: string | null,"user_id": string
                  }
                  Update: {
                    "created_at"?: string,"created_by"?: string | null,"org_id"?: string,"team_id"?: string,"updated_at"?: string,"updated_by"?: string | null,"user_id"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "exercise_team_members_org_id_team_id_fkey"
      columns: ["org_id","team_id"]
isOneToOne: false
      referencedRelation: "exercise_teams"
      referencedColumns: ["org_id","id"]
    },{
      foreignKeyName: "exercise_team_members_org_id_user_id_fkey"
      columns: ["org_id","user_id"]
isOneToOne: false
      referencedRelation: "organization_members"
      referencedColumns: ["org_id","user_id"]
    }
                  ]
                },"exercise_teams": {
                  Row: {
                    "created_at": string,"created_by": string | null,"exercise_id": string,"id": string,"name": string,"org_id": string,"updated_at": string,"updated_by": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"created_by"?: string | null,"exercise_id": string,"id"?: string,"name": string,"org_id": string,"updated_at"?: string,"updated_by"?: string | null
                  }
                  Update: {
                    "created_at"?: string,"created_by"?: string | null,"exercise_id"?: string,"id"?: string,"name"?: string,"org_id"?: string,"updated_at"?: string,"updated_by"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "exercise_teams_org_id_exercise_id_fkey"
      columns: ["org_id","exercise_id"]
isOneToOne: false
      referencedRelation: "exercises"
      referencedColumns: ["org_id","id"]
    }
                  ]
                },"exercises": {
                  Row: {
                    "created_at": string,"created_by": string | null,"id": string,"org_id": string,"status": string,"title": string,"updated_at": string,"updated_by": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"created_by"?: string | null,"id"?: string,"org_id": string,"status"?: string,"title": string,"updated_at"?: string,"updated_by"?: string | null
                  }
                  Update: {
                    "created_at"?: string,"created_by"?: string | null,"id"?: string,"org_id"?: string,"status"?: string,"title"?: string,"updated_at"?: string,"updated_by"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "exercises_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"file_shares": {
                  Row: {
                    "access": string,"created_at": string,"created_by": string | null,"expires_at": string | null,"file_id": string,"grantee_role": Database["public"]['Enums']["org_role"] | null,"grantee_user_id": string | null,"id": string,"org_id": string,"updated_at": string,"updated_by": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "access": string,"created_at"?: string,"created_by"?: string | null,"expires_at"?: string | null,"file_id": string,"grantee_role"?: Database["public"]['Enums']["org_role"] | null,"grantee_user_id"?: string | null,"id"?: string,"org_id": string,"updated_at"?: string,"updated_by"?: string | null
                  }
                  Update: {
                    "access"?: string,"created_at"?: string,"created_by"?: string | null,"expires_at"?: string | null,"file_id"?: string,"grantee_role"?: Database["public"]['Enums']["org_role"] | null,"grantee_user_id"?: string | null,"id"?: string,"org_id"?: string,"updated_at"?: string,"updated_by"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "file_shares_org_id_file_id_fkey"
      columns: ["org_id","file_id"]
isOneToOne: false
      referencedRelation: "files"
      referencedColumns: ["org_id","id"]
    }
                  ]
                },"file_texts": {
                  Row: {
                    "content": string,"extracted_at": string,"file_id": string,"org_id": string,"search": unknown,"truncated": boolean
                  }
                  ComputedFields: never
                  Insert: {
                    "content": string,"extracted_at"?: string,"file_id": string,"org_id": string,"search"?: never,"truncated"?: boolean
                  }
                  Update: {
                    "content"?: string,"extracted_at"?: string,"file_id"?: string,"org_id"?: string,"search"?: never,"truncated"?: boolean
                  }
                  Relationships: [
                    {
      foreignKeyName: "file_texts_org_id_file_id_fkey"
      columns: ["org_id","file_id"]
isOneToOne: false
      referencedRelation: "files"
      referencedColumns: ["org_id","id"]
    }
                  ]
                },"file_versions": {
                  Row: {
                    "created_at": string,"created_by": string | null,"file_id": string,"id": string,"object_path": string,"org_id": string,"sha256": string,"size_bytes": number,"version": number
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"created_by"?: string | null,"file_id": string,"id"?: string,"object_path": string,"org_id": string,"sha256": string,"size_bytes": number,"version": number
                  }
                  Update: {
                    "created_at"?: string,"created_by"?: string | null,"file_id"?: string,"id"?: string,"object_path"?: string,"org_id"?: string,"sha256"?: string,"size_bytes"?: number,"version"?: number
                  }
                  Relationships: [
                    {
      foreignKeyName: "file_versions_org_id_file_id_fkey"
      columns: ["org_id","file_id"]
isOneToOne: false
      referencedRelation: "files"
      referencedColumns: ["org_id","id"]
    }
                  ]
                },"files": {
                  Row: {
                    "category": string,"contains_pii": boolean,"created_at": string,"created_by": string | null,"declared_mime": string,"deleted_at": string | null,"detected_mime": string | null,"id": string,"name": string,"next_attempt_at": string | null,"object_path": string,"org_id": string,"processed_at": string | null,"scan_attempts": number,"scan_started_at": string | null,"sha256": string | null,"size_bytes": number,"status": Database["public"]['Enums']["file_status"],"status_reason": string | null,"thumbnail_path": string | null,"updated_at": string,"updated_by": string | null,"uploaded_by": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "category"?: string,"contains_pii"?: boolean,"created_at"?: string,"created_by"?: string | null,"declared_mime": string,"deleted_at"?: string | null,"detected_mime"?: string | null,"id"?: string,"name": string,"next_attempt_at"?: string | null,"object_path": string,"org_id": string,"processed_at"?: string | null,"scan_attempts"?: number,"scan_started_at"?: string | null,"sha256"?: string | null,"size_bytes": number,"status"?: Database["public"]['Enums']["file_status"],"status_reason"?: string | null,"thumbnail_path"?: string | null,"updated_at"?: string,"updated_by"?: string | null,"uploaded_by"?: string | null
                  }
                  Update: {
                    "category"?: string,"contains_pii"?: boolean,"created_at"?: string,"created_by"?: string | null,"declared_mime"?: string,"deleted_at"?: string | null,"detected_mime"?: string | null,"id"?: string,"name"?: string,"next_attempt_at"?: string | null,"object_path"?: string,"org_id"?: string,"processed_at"?: string | null,"scan_attempts"?: number,"scan_started_at"?: string | null,"sha256"?: string | null,"size_bytes"?: number,"status"?: Database["public"]['Enums']["file_status"],"status_reason"?: string | null,"thumbnail_path"?: string | null,"updated_at"?: string,"updated_by"?: string | null,"uploaded_by"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "files_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"invitations": {
                  Row: {
                    "accepted_at": string | null,"accepted_by": string | null,"created_at": string,"created_by": string | null,"email": string,"expires_at": string,"id": string,"org_id": string,"revoked_at": string | null,"revoked_by": string | null,"role": Database["public"]['Enums']["org_role"],"token_hash": string,"updated_at": string,"updated_by": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "accepted_at"?: string | null,"accepted_by"?: string | null,"created_at"?: string,"created_by"?: string | null,"email": string,"expires_at": string,"id"?: string,"org_id": string,"revoked_at"?: string | null,"revoked_by"?: string | null,"role": Database["public"]['Enums']["org_role"],"token_hash": string,"updated_at"?: string,"updated_by"?: string | null
                  }
                  Update: {
                    "accepted_at"?: string | null,"accepted_by"?: string | null,"created_at"?: string,"created_by"?: string | null,"email"?: string,"expires_at"?: string,"id"?: string,"org_id"?: string,"revoked_at"?: string | null,"revoked_by"?: string | null,"role"?: Database["public"]['Enums']["org_role"],"token_hash"?: string,"updated_at"?: string,"updated_by"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "invitations_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"member_permissions": {
                  Row: {
                    "created_at": string,"created_by": string | null,"granted": boolean,"org_id": string,"permission": string,"user_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"created_by"?: string | null,"granted": boolean,"org_id": string,"permission": string,"user_id": string
                  }
                  Update: {
                    "created_at"?: string,"created_by"?: string | null,"granted"?: boolean,"org_id"?: string,"permission"?: string,"user_id"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "member_permissions_org_id_user_id_fkey"
      columns: ["org_id","user_id"]
isOneToOne: false
      referencedRelation: "organization_members"
      referencedColumns: ["org_id","user_id"]
    },{
      foreignKeyName: "member_permissions_permission_fkey"
      columns: ["permission"]
isOneToOne: false
      referencedRelation: "permissions"
      referencedColumns: ["key"]
    }
                  ]
                },"notification_audience_deliveries": {
                  Row: {
                    "attempts": number,"batch_id": string,"created_at": string,"delivered_at": string | null,"last_error": string | null,"next_attempt_at": string,"org_id": string,"recipients": number,"roles": (Database["public"]['Enums']["org_role"])[],"status": string
                  }
                  ComputedFields: never
                  Insert: {
                    "attempts"?: number,"batch_id": string,"created_at"?: string,"delivered_at"?: string | null,"last_error"?: string | null,"next_attempt_at"?: string,"org_id": string,"recipients": number,"roles": (Database["public"]['Enums']["org_role"])[],"status"?: string
                  }
                  Update: {
                    "attempts"?: number,"batch_id"?: string,"created_at"?: string,"delivered_at"?: string | null,"last_error"?: string | null,"next_attempt_at"?: string,"org_id"?: string,"recipients"?: number,"roles"?: (Database["public"]['Enums']["org_role"])[],"status"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "notification_audience_deliveries_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"notification_deliveries": {
                  Row: {
                    "attempts": number,"batch_id": string,"channel": string,"delivered_at": string | null,"digest": boolean,"last_error": string | null,"next_attempt_at": string,"notification_id": string,"org_id": string,"status": string
                  }
                  ComputedFields: never
                  Insert: {
                    "attempts"?: number,"batch_id": string,"channel": string,"delivered_at"?: string | null,"digest"?: boolean,"last_error"?: string | null,"next_attempt_at"?: string,"notification_id": string,"org_id": string,"status"?: string
                  }
                  Update: {
                    "attempts"?: number,"batch_id"?: string,"channel"?: string,"delivered_at"?: string | null,"digest"?: boolean,"last_error"?: string | null,"next_attempt_at"?: string,"notification_id"?: string,"org_id"?: string,"status"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "notification_deliveries_notification_id_fkey"
      columns: ["notification_id"]
isOneToOne: false
      referencedRelation: "notifications"
      referencedColumns: ["id"]
    }
                  ]
                },"notification_preferences": {
                  Row: {
                    "channel": string,"enabled": boolean,"org_id": string,"type": string,"updated_at": string,"user_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "channel": string,"enabled": boolean,"org_id": string,"type": string,"updated_at"?: string,"user_id": string
                  }
                  Update: {
                    "channel"?: string,"enabled"?: boolean,"org_id"?: string,"type"?: string,"updated_at"?: string,"user_id"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "notification_preferences_org_id_user_id_fkey"
      columns: ["org_id","user_id"]
isOneToOne: false
      referencedRelation: "organization_members"
      referencedColumns: ["org_id","user_id"]
    }
                  ]
                },"notification_settings": {
                  Row: {
                    "digest_time": string,"email_digest": string,"locale": string,"org_id": string,"quiet_end": string | null,"quiet_start": string | null,"time_zone": string,"updated_at": string,"user_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "digest_time"?: string,"email_digest"?: string,"locale"?: string,"org_id": string,"quiet_end"?: string | null,"quiet_start"?: string | null,"time_zone"?: string,"updated_at"?: string,"user_id": string
                  }
                  Update: {
                    "digest_time"?: string,"email_digest"?: string,"locale"?: string,"org_id"?: string,"quiet_end"?: string | null,"quiet_start"?: string | null,"time_zone"?: string,"updated_at"?: string,"user_id"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "notification_settings_org_id_user_id_fkey"
      columns: ["org_id","user_id"]
isOneToOne: true
      referencedRelation: "organization_members"
      referencedColumns: ["org_id","user_id"]
    }
                  ]
                },"notification_templates": {
                  Row: {
                    "body": string,"created_at": string,"created_by": string | null,"id": string,"locale": string,"org_id": string | null,"subject": string,"type": string,"updated_at": string,"updated_by": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "body": string,"created_at"?: string,"created_by"?: string | null,"id"?: string,"locale"?: string,"org_id"?: string | null,"subject": string,"type": string,"updated_at"?: string,"updated_by"?: string | null
                  }
                  Update: {
                    "body"?: string,"created_at"?: string,"created_by"?: string | null,"id"?: string,"locale"?: string,"org_id"?: string | null,"subject"?: string,"type"?: string,"updated_at"?: string,"updated_by"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "notification_templates_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "notification_templates_type_fkey"
      columns: ["type"]
isOneToOne: false
      referencedRelation: "notification_types"
      referencedColumns: ["key"]
    }
                  ]
                },"notification_types": {
                  Row: {
                    "audience_delivery": boolean,"default_channels": (string)[],"default_priority": string,"description": string,"key": string,"sent_by_members": boolean
                  }
                  ComputedFields: never
                  Insert: {
                    "audience_delivery"?: boolean,"default_channels": (string)[],"default_priority"?: string,"description": string,"key": string,"sent_by_members"?: boolean
                  }
                  Update: {
                    "audience_delivery"?: boolean,"default_channels"?: (string)[],"default_priority"?: string,"description"?: string,"key"?: string,"sent_by_members"?: boolean
                  }
                  Relationships: [
                    
                  ]
                },"notifications": {
                  Row: {
                    "batch_id": string,"body": string,"created_at": string,"created_by": string | null,"data": NonNullable<Json>,"id": string,"idempotency_key": string | null,"org_id": string,"priority": string,"read_at": string | null,"recipient_id": string,"title": string,"type": string
                  }
                  ComputedFields: never
                  Insert: {
                    "batch_id": string,"body": string,"created_at"?: string,"created_by"?: string | null,"data"?: NonNullable<Json>,"id"?: string,"idempotency_key"?: string | null,"org_id": string,"priority": string,"read_at"?: string | null,"recipient_id": string,"title": string,"type": string
                  }
                  Update: {
                    "batch_id"?: string,"body"?: string,"created_at"?: string,"created_by"?: string | null,"data"?: NonNullable<Json>,"id"?: string,"idempotency_key"?: string | null,"org_id"?: string,"priority"?: string,"read_at"?: string | null,"recipient_id"?: string,"title"?: string,"type"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "notifications_org_id_recipient_id_fkey"
      columns: ["org_id","recipient_id"]
isOneToOne: false
      referencedRelation: "organization_members"
      referencedColumns: ["org_id","user_id"]
    }
                  ]
                },"organization_members": {
                  Row: {
                    "created_at": string,"created_by": string | null,"org_id": string,"role": Database["public"]['Enums']["org_role"],"updated_at": string,"updated_by": string | null,"user_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"created_by"?: string | null,"org_id": string,"role": Database["public"]['Enums']["org_role"],"updated_at"?: string,"updated_by"?: string | null,"user_id": string
                  }
                  Update: {
                    "created_at"?: string,"created_by"?: string | null,"org_id"?: string,"role"?: Database["public"]['Enums']["org_role"],"updated_at"?: string,"updated_by"?: string | null,"user_id"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "organization_members_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"organizations": {
                  Row: {
                    "coppa": boolean,"created_at": string,"created_by": string | null,"data_region": string,"deleted_at": string | null,"ferpa": boolean,"id": string,"name": string,"settings": NonNullable<Json>,"slug": string,"tier": Database["public"]['Enums']["subscription_tier"],"updated_at": string,"updated_by": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "coppa"?: boolean,"created_at"?: string,"created_by"?: string | null,"data_region"?: string,"deleted_at"?: string | null,"ferpa"?: boolean,"id"?: string,"name": string,"settings"?: NonNullable<Json>,"slug": string,"tier"?: Database["public"]['Enums']["subscription_tier"],"updated_at"?: string,"updated_by"?: string | null
                  }
                  Update: {
                    "coppa"?: boolean,"created_at"?: string,"created_by"?: string | null,"data_region"?: string,"deleted_at"?: string | null,"ferpa"?: boolean,"id"?: string,"name"?: string,"settings"?: NonNullable<Json>,"slug"?: string,"tier"?: Database["public"]['Enums']["subscription_tier"],"updated_at"?: string,"updated_by"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "organizations_tier_fkey"
      columns: ["tier"]
isOneToOne: false
      referencedRelation: "subscription_tiers"
      referencedColumns: ["tier"]
    }
                  ]
                },"permissions": {
                  Row: {
                    "description": string,"key": string
                  }
                  ComputedFields: never
                  Insert: {
                    "description": string,"key": string
                  }
                  Update: {
                    "description"?: string,"key"?: string
                  }
                  Relationships: [
                    
                  ]
                },"role_permissions": {
                  Row: {
                    "permission": string,"role": Database["public"]['Enums']["org_role"]
                  }
                  ComputedFields: never
                  Insert: {
                    "permission": string,"role": Database["public"]['Enums']["org_role"]
                  }
                  Update: {
                    "permission"?: string,"role"?: Database["public"]['Enums']["org_role"]
                  }
                  Relationships: [
                    {
      foreignKeyName: "role_permissions_permission_fkey"
      columns: ["permission"]
isOneToOne: false
      referencedRelation: "permissions"
      referencedColumns: ["key"]
    }
                  ]
                },"storage_quotas": {
                  Row: {
                    "org_id": string,"reserved_bytes": number,"updated_at": string,"used_bytes": number
                  }
                  ComputedFields: never
                  Insert: {
                    "org_id": string,"reserved_bytes"?: number,"updated_at"?: string,"used_bytes"?: number
                  }
                  Update: {
                    "org_id"?: string,"reserved_bytes"?: number,"updated_at"?: string,"used_bytes"?: number
                  }
                  Relationships: [
                    {
      foreignKeyName: "storage_quotas_org_id_fkey"
      columns: ["org_id"]
isOneToOne: true
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"subscription_tiers": {
                  Row: {
                    "analytics_retention_days": number,"api_calls_per_day": number,"api_requests_per_minute": number,"events_per_day": number,"events_per_minute": number,"max_file_size_bytes": number,"max_members": number,"notifications_per_minute": number,"retention_days": number,"storage_bytes": number,"tier": Database["public"]['Enums']["subscription_tier"]
                  }
                  ComputedFields: never
                  Insert: {
                    "analytics_retention_days"?: number,"api_calls_per_day"?: number,"api_requests_per_minute": number,"events_per_day"?: number,"events_per_minute"?: number,"max_file_size_bytes": number,"max_members": number,"notifications_per_minute"?: number,"retention_days": number,"storage_bytes": number,"tier": Database["public"]['Enums']["subscription_tier"]
                  }
                  Update: {
                    "analytics_retention_days"?: number,"api_calls_per_day"?: number,"api_requests_per_minute"?: number,"events_per_day"?: number,"events_per_minute"?: number,"max_file_size_bytes"?: number,"max_members"?: number,"notifications_per_minute"?: number,"retention_days"?: number,"storage_bytes"?: number,"tier"?: Database["public"]['Enums']["subscription_tier"]
                  }
                  Relationships: [
                    
                  ]
                },"usage_daily": {
                  Row: {
                    "active_users": number,"api_calls": number | null,"day": string,"events": number,"jobs": number,"members": number,"mqtt_messages": number | null,"org_id": string,"storage_bytes": number,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "active_users"?: number,"api_calls"?: number | null,"day": string,"events"?: number,"jobs"?: number,"members"?: number,"mqtt_messages"?: number | null,"org_id": string,"storage_bytes"?: number,"updated_at"?: string
                  }
                  Update: {
                    "active_users"?: number,"api_calls"?: number | null,"day"?: string,"events"?: number,"jobs"?: number,"members"?: number,"mqtt_messages"?: number | null,"org_id"?: string,"storage_bytes"?: number,"updated_at"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "usage_daily_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"user_active_org": {
                  Row: {
                    "org_id": string,"updated_at": string,"user_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "org_id": string,"updated_at"?: string,"user_id": string
                  }
                  Update: {
                    "org_id"?: string,"updated_at"?: string,"user_id"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "user_active_org_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                }
          }
          Views: {
            [_ in never]: never
          }
          Functions: {
            "accept_invitation":
{ Args: { "token": string }; Returns: {
              "created_at": string,
"created_by": string | null,
"org_id": string,
"role": Database["public"]['Enums']["org_role"],
"updated_at": string,
"updated_by": string | null,
"user_id": string
            }
                          SetofOptions: {
        from: "*"
        to: "organization_members"
        isOneToOne: true
        isSetofReturn: false
      } },
"analytics_series":
{ Args: { "event_type": string,"from_at": string,"granularity"?: string,"org_id": string,"to_at": string }; Returns: {
              "bucket": string,"events": number,"sums": Json,"users": number
            }[]
                           },
"analytics_top_events":
{ Args: { "from_at": string,"max_rows"?: number,"org_id": string,"to_at": string }; Returns: {
              "event_type": string,"events": number
            }[]
                           },
"cancel_job":
{ Args: { "job_id": string }; Returns: undefined
                           },
"create_api_key":
{ Args: { "expires_at"?: string,"name": string,"org_id": string,"scopes": (string)[] }; Returns: {
              "api_key": string,"api_key_id": string,"key_prefix": string
            }[]
                           },
"create_invitation":
{ Args: { "email": string,"org_id": string,"role": Database["public"]['Enums']["org_role"],"valid_for"?: string }; Returns: {
              "expires_at": string,"invitation_id": string,"token": string
            }[]
                           },
"create_organization":
{ Args: { "name": string,"slug": string }; Returns: {
              "coppa": boolean,
"created_at": string,
"created_by": string | null,
"data_region": string,
"deleted_at": string | null,
"ferpa": boolean,
"id": string,
"name": string,
"settings": NonNullable<Json>,
"slug": string,
"tier": Database["public"]['Enums']["subscription_tier"],
"updated_at": string,
"updated_by": string | null
            }
                          SetofOptions: {
        from: "*"
        to: "organizations"
        isOneToOne: true
        isSetofReturn: false
      } },
"custom_access_token_hook":
{ Args: { "event": Json }; Returns: Json
                           },
"delete_file":
{ Args: { "file_id": string }; Returns: undefined
                           },
"delete_organization":
{ Args: { "org_id": string }; Returns: undefined
                           },
"hook_password_verification_attempt":
{ Args: { "event": Json }; Returns: Json
                           },
"list_jobs":
{ Args: { "job_state"?: string,"max_rows"?: number,"org_id": string }; Returns: {
              "completed_on": string,"created_on": string,"data": Json,"id": string,"output": Json,"priority": number,"queue": string,"retry_count": number,"retry_limit": number,"source_id": string,"source_queue": string,"started_on": string,"state": string
            }[]
                           },
"organization_members_directory":
{ Args: { "org_id": string }; Returns: {
              "display_name": string,"email": string,"joined_at": string,"role": Database["public"]['Enums']["org_role"],"user_id": string
            }[]
                           },
"replay_dead_letter":
{ Args: { "job_id": string }; Returns: string
                           },
"request_data_export":
{ Args: { "org_id": string }; Returns: {
              "completed_at": string | null,
"created_at": string,
"created_by": string | null,
"error": string | null,
"id": string,
"job_id": string | null,
"object_path": string | null,
"org_id": string,
"progress": number,
"required_permissions": (string)[],
"status": string,
"updated_at": string,
"updated_by": string | null
            }
                          SetofOptions: {
        from: "*"
        to: "data_exports"
        isOneToOne: true
        isSetofReturn: false
      } },
"request_file_upload":
{ Args: { "mime_type": string,"name": string,"org_id": string,"size_bytes": number }; Returns: {
              "category": string,
"contains_pii": boolean,
"created_at": string,
"created_by": string | null,
"declared_mime": string,
"deleted_at": string | null,
"detected_mime": string | null,
"id": string,
"name": string,
"next_attempt_at": string | null,
"object_path": string,
"org_id": string,
"processed_at": string | null,
"scan_attempts": number,
"scan_started_at": string | null,
"sha256": string | null,
"size_bytes": number,
"status": Database["public"]['Enums']["file_status"],
"status_reason": string | null,
"thumbnail_path": string | null,
"updated_at": string,
"updated_by": string | null,
"uploaded_by": string | null
            }
                          SetofOptions: {
        from: "*"
        to: "files"
        isOneToOne: true
        isSetofReturn: false
      } },
"restore_file":
{ Args: { "file_id": string }; Returns: undefined
                           },
"restore_organization":
{ Args: { "org_id": string }; Returns: {
              "coppa": boolean,
"created_at": string,
"created_by": string | null,
"data_region": string,
"deleted_at": string | null,
"ferpa": boolean,
"id": string,
"name": string,
"settings": NonNullable<Json>,
"slug": string,
"tier": Database["public"]['Enums']["subscription_tier"],
"updated_at": string,
"updated_by": string | null
            }
                          SetofOptions: {
        from: "*"
        to: "organizations"
        isOneToOne: true
        isSetofReturn: false
      } },
"retry_job":
{ Args: { "job_id": string }; Returns: undefined
                           },
"revoke_api_key":
{ Args: { "api_key_id": string }; Returns: undefined
                           },
"revoke_invitation":
{ Args: { "invitation_id": string }; Returns: undefined
                           },
"send_notification":
{ Args: { "body"?: string,"data"?: Json,"idempotency_key"?: string,"org_id": string,"priority"?: string,"recipients"?: Json,"title": string,"type": string }; Returns: {
              "batch_id": string,"created": number
            }[]
                           },
"set_active_organization":
{ Args: { "org_id": string }; Returns: undefined
                           },
"set_api_key_mqtt_topics":
{ Args: { "api_key_id": string,"topics": (string)[] }; Returns: (string)[]
                           },
"usage_versus_limits":
{ Args: { "for_day"?: string,"org_id": string }; Returns: {
              "limit_value": number,"metric": string,"percent": number,"used": number
            }[]
                           },
"verify_api_key":
{ Args: { "api_key": string,"required_scope"?: string }; Returns: {
              "api_key_id": string,"org_id": string,"scopes": (string)[]
            }[]
                           }
          }
          Enums: {
            "file_status": "pending"|"scanning"|"clean"|"infected"|"rejected"|"failed","org_role": "owner"|"admin"|"teacher"|"student","subscription_tier": "free"|"basic"|"professional"|"enterprise"|"education"
          }
          CompositeTypes: {
            [_ in never]: never
          }
        }
}

type DatabaseWithoutInternals = Omit<Database, '__InternalSupabase'>

type DefaultSchema = DatabaseWithoutInternals[Extract<keyof Database, "public">]

export type Tables<
  DefaultSchemaTableNameOrOptions extends
    | keyof (DefaultSchema["Tables"] & DefaultSchema["Views"])
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof (DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"] &
        DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Views"])
    : never = never
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? (DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"] &
      DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Views"])[TableName] extends {
      Row: infer R
    }
    ? R
    : never
  : DefaultSchemaTableNameOrOptions extends keyof (DefaultSchema["Tables"] & DefaultSchema["Views"])
  ? (DefaultSchema["Tables"] & DefaultSchema["Views"])[DefaultSchemaTableNameOrOptions] extends {
      Row: infer R
    }
    ? R
    : never
  : never

export type TablesInsert<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema["Tables"]
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
    : never = never
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"][TableName] extends {
      Insert: infer I
    }
    ? I
    : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema["Tables"]
  ? DefaultSchema["Tables"][DefaultSchemaTableNameOrOptions] extends {
      Insert: infer I
    }
    ? I
    : never
  : never

export type TablesUpdate<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema["Tables"]
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
    : never = never
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"][TableName] extends {
      Update: infer U
    }
    ? U
    : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema["Tables"]
  ? DefaultSchema["Tables"][DefaultSchemaTableNameOrOptions] extends {
      Update: infer U
    }
    ? U
    : never
  : never

export type Enums<
  DefaultSchemaEnumNameOrOptions extends
    | keyof DefaultSchema["Enums"]
    | { schema: keyof DatabaseWithoutInternals },
  EnumName extends DefaultSchemaEnumNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions["schema"]]["Enums"]
    : never = never
> = DefaultSchemaEnumNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions["schema"]]["Enums"][EnumName]
  : DefaultSchemaEnumNameOrOptions extends keyof DefaultSchema["Enums"]
  ? DefaultSchema["Enums"][DefaultSchemaEnumNameOrOptions]
  : never

export type CompositeTypes<
  PublicCompositeTypeNameOrOptions extends
    | keyof DefaultSchema["CompositeTypes"]
    | { schema: keyof DatabaseWithoutInternals },
  CompositeTypeName extends PublicCompositeTypeNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions["schema"]]["CompositeTypes"]
    : never = never
> = PublicCompositeTypeNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions["schema"]]["CompositeTypes"][CompositeTypeName]
  : PublicCompositeTypeNameOrOptions extends keyof DefaultSchema["CompositeTypes"]
  ? DefaultSchema["CompositeTypes"][PublicCompositeTypeNameOrOptions]
  : never

export const Constants = {
  "audit": {
          Enums: {
            
          }
        },"public": {
          Enums: {
            "file_status": ["pending", "scanning", "clean", "infected", "rejected", "failed"],"org_role": ["owner", "admin", "teacher", "student"],"subscription_tier": ["free", "basic", "professional", "enterprise", "education"]
          }
        }
} as const
